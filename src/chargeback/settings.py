"""The daemon's settings: a YAML file overridden by the environment (DESIGN §9).

``settings.yaml`` at the repository root is the documented default. Every value can be
overridden by an environment variable named ``CHARGEBACK_`` + the dotted path in upper
case with ``__`` between the parts; the environment wins over the file::

    CHARGEBACK_HTTP__PORT=9000
    CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_SECRET=...

Tenant names are lowercase (``[a-z0-9_]``) so that such variables can name them.
Every section forbids unknown keys, except a tenant's ``plugin_settings``, which the
tenant's ecosystem plugin validates itself (:func:`validate_settings` runs that check).

Relative paths are relative to the working directory of the process.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chargeback.core.engine.types import TenantConfig
from chargeback.core.ownership.config import OwnershipSettings
from chargeback.core.storage.factory import parse_url as parse_storage_url
from chargeback.core.storage.factory import redact_url, url_password
from chargeback.errors import ConfigError, PluginLoadError
from chargeback.logging import SECRET_KEY_PATTERN
from chargeback.service.scheduling import cron_trigger

if TYPE_CHECKING:
    from chargeback.core.plugin.registry import PluginRegistry

__all__ = [
    "MASK",
    "AppSettings",
    "DaemonSettings",
    "EmitterSettings",
    "HttpSettings",
    "LoggingSettings",
    "SchedulingSettings",
    "StorageSettings",
    "TenantSettings",
    "changed_tenants",
    "cron_trigger",
    "is_secret_key",
    "load_settings",
    "masked_settings",
    "plugin_config_error",
    "restart_only_changes",
    "secret_values",
    "validate_settings",
]

_TENANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_ID_KEY = re.compile(r"(^|_)key$", re.I)
MASK = "**********"
"""What a secret value is printed as."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    """Where the database lives."""

    path: Path = Path("./var/chargeback.db")
    """The SQLite file (created with its directory on first start)."""
    url: str | None = None
    """The database as a URL, instead of ``path``: ``sqlite:///PATH``, or
    ``postgresql://user@host:5432/db`` for PostgreSQL (see
    :mod:`chargeback.core.storage.factory`; the password from ``PGPASSWORD`` or a pgpass
    file, or the whole URL from ``CHARGEBACK_STORAGE__URL``: never logged)."""
    lease_ttl_s: float = Field(default=30.0, gt=0)
    """PostgreSQL with replicas: how long a tenant's lease outlives its last heartbeat
    (every third of it); a replica that dies loses its tenants this long after."""
    writer_process_min_rows: int | None = Field(default=20_000, ge=0)
    """Date commits of at least this many lines plus rows are written by a child
    process, so allocation and SQLite use two cores; ``null`` writes every commit in
    the daemon's own process; ``0`` sends every commit to the child."""

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_storage_url(value)
            except ConfigError as exc:
                raise ValueError(str(exc).removeprefix("storage.url: ")) from exc
        return value

    @model_validator(mode="after")
    def _url_or_path(self) -> StorageSettings:
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError("set storage.url or storage.path, not both")
        return self


class HttpSettings(_Section):
    """The HTTP server for ``/metrics``, ``/healthz`` and ``/readyz``."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """Listen address; ``0.0.0.0`` in a container so Prometheus can reach it."""
    port: int = Field(default=8000, ge=0, le=65535)


class LoggingSettings(_Section):
    """Log level and format (``auto``: JSON unless stdout is a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class DaemonSettings(_Section):
    """Files the running daemon keeps for operators and orchestrators."""

    pid_file: Path = Path("./var/chargeback.pid")
    """Written at start, removed at exit; ``chargeback rerun`` signals this pid."""
    heartbeat_file: Path = Path("./var/chargeback.heartbeat")
    """Timestamp and counters, rewritten every ``heartbeat_interval_s``; read by ``check``."""
    heartbeat_interval_s: float = Field(default=10.0, gt=0)


def _check_cron(expr: str) -> str:
    try:
        cron_trigger(expr)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expr!r}: {exc}") from exc
    return expr


class SchedulingSettings(_Section):
    """Defaults for every tenant (a tenant may override the day windows and schedule)."""

    schedule: str = "0 6 * * *"
    """Crontab expression, UTC."""
    jitter_s: int = Field(default=120, ge=0)
    """Random delay added to each scheduled run, so tenants do not hit an API at once."""
    max_concurrent_tenants: int = Field(default=4, ge=1)
    lookback_days: int = Field(default=30, ge=1)
    cutoff_days: int = Field(default=3, ge=0)
    recalc_days: int = Field(default=3, ge=0)
    run_timeout_s: float = Field(default=3600.0, gt=0)
    shutdown_grace_s: float = Field(default=25.0, ge=0)
    """On SIGTERM, how long running tenants may finish before they are cancelled."""
    misfire_grace_s: int = Field(default=3600, ge=1)
    """A scheduled run delayed by less than this still runs (coalesced into one)."""
    run_missed_on_startup: bool = True
    """At start-up, run a tenant whose last success is older than its latest scheduled time."""

    _cron = field_validator("schedule")(_check_cron)


class EmitterSettings(_Section):
    """One emitter: ``type`` from the emitter registry, ``params`` passed to its factory."""

    name: str = Field(min_length=1)
    type: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TenantSettings(_Section):
    """One tenant: an ecosystem plugin with its own settings and optional overrides."""

    ecosystem: str = Field(min_length=1)
    enabled: bool = True
    schedule: str | None = None
    lookback_days: int | None = Field(default=None, ge=1)
    cutoff_days: int | None = Field(default=None, ge=0)
    recalc_days: int | None = Field(default=None, ge=0)
    plugin_settings: dict[str, Any] = Field(default_factory=dict)
    """Validated by the plugin (``plugin.initialize``), not here."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)


def _default_emitters() -> list[EmitterSettings]:
    return [
        EmitterSettings(name="csv", type="csv", params={"output_dir": "./var/csv"}),
        EmitterSettings(name="prometheus", type="prometheus"),
    ]


class AppSettings(BaseSettings):
    """Everything the daemon reads at start-up (and again on SIGHUP)."""

    model_config = SettingsConfigDict(
        env_prefix="CHARGEBACK_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    storage: StorageSettings = StorageSettings()
    plugins_path: Path | None = None
    """A directory of extra plugin packages, imported from files."""
    http: HttpSettings = HttpSettings()
    logging: LoggingSettings = LoggingSettings()
    daemon: DaemonSettings = DaemonSettings()
    scheduling: SchedulingSettings = SchedulingSettings()
    emitters: list[EmitterSettings] = Field(default_factory=_default_emitters)
    tenants: dict[str, TenantSettings] = Field(default_factory=dict)
    ownership: OwnershipSettings = OwnershipSettings()  # teams (core/ownership/config.py)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Let the environment win over the file's values (passed as init values)."""
        return (env_settings, init_settings)

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, value: dict[str, TenantSettings]) -> dict[str, TenantSettings]:
        for name in value:
            if not _TENANT_NAME.match(name):
                raise ValueError(
                    f"tenant name {name!r} must be lowercase letters, digits and '_' "
                    "(so CHARGEBACK_TENANTS__<NAME>__... can address it)"
                )
        return value

    @model_validator(mode="after")
    def _unique_emitters(self) -> AppSettings:
        names = [e.name for e in self.emitters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"emitter names must be unique, repeated: {', '.join(dupes)}")
        return self

    def tenant_schedule(self, name: str) -> str:
        """Return the cron expression of tenant ``name``."""
        return self.tenants[name].schedule or self.scheduling.schedule

    def tenant_config(self, name: str) -> TenantConfig:
        """Return the engine's view of tenant ``name`` with the defaults filled in."""
        t = self.tenants[name]
        s = self.scheduling
        return TenantConfig(
            name=name,
            ecosystem=t.ecosystem,
            plugin_settings=dict(t.plugin_settings),
            lookback_days=t.lookback_days if t.lookback_days is not None else s.lookback_days,
            cutoff_days=t.cutoff_days if t.cutoff_days is not None else s.cutoff_days,
            recalc_days=t.recalc_days if t.recalc_days is not None else s.recalc_days,
            run_timeout_s=s.run_timeout_s,
        )

    def enabled_tenants(self) -> list[str]:
        """Return the names of the enabled tenants, sorted."""
        return sorted(n for n, t in self.tenants.items() if t.enabled)


# -- loading ------------------------------------------------------------------------------


def load_settings(path: str | Path | None) -> AppSettings:
    """Read ``path`` (YAML; ``None``: defaults only) and the environment into settings.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, not a mapping, or a
            value is invalid; the message names the file, the field path and the problem.
    """
    source = str(path) if path is not None else "environment"
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: settings file not found", source=source) from exc
        except OSError as exc:
            raise ConfigError(
                f"{source}: cannot read settings file: {exc.strerror}", source=source
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{source}: not valid YAML{where}: {problem}", source=source) from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping of sections at the top, got {type(data).__name__}",
                source=source,
            )
    try:
        return AppSettings(**data)
    except pydantic.ValidationError as exc:
        raise _config_error(source, exc, file_tenants=data.get("tenants")) from exc


def _config_error(
    source: str, exc: pydantic.ValidationError, *, file_tenants: object = None
) -> ConfigError:
    """Turn a pydantic error into one message naming every bad field (never its value)."""
    in_file = set(file_tenants) if isinstance(file_tenants, dict) else set()
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = err["loc"]
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
        if len(loc) > 1 and loc[0] == "tenants" and loc[1] not in in_file:
            msg += (
                f" (tenant {loc[1]!r} is not in the file, only in environment variables"
                f" CHARGEBACK_TENANTS__{str(loc[1]).upper()}__...)"
            )
        problems.append((path, msg))
    lines = "; ".join(f"{p}: {m}" for p, m in problems)
    return ConfigError(f"{source}: invalid settings: {lines}", source=source, field=problems[0][0])


def plugin_config_error(source: str, tenant: str, exc: pydantic.ValidationError) -> ConfigError:
    """Name the bad ``tenants.<tenant>.plugin_settings.<field>`` of a plugin's validation."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        path = f"tenants.{tenant}.plugin_settings" + (f".{loc}" if loc else "")
        msg = "unknown key (not allowed here)" if err["type"] == "extra_forbidden" else err["msg"]
        problems.append((path, msg))
    lines = "; ".join(f"{p}: {m}" for p, m in problems)
    return ConfigError(f"{source}: invalid settings: {lines}", source=source, field=problems[0][0])


# -- secrets ------------------------------------------------------------------------------


def is_secret_key(key: str) -> bool:
    """Return whether a settings key names a secret (``api_secret``, ``password``, ...)."""
    return bool(SECRET_KEY_PATTERN.search(key))


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr) or (is_secret_key(key) and value not in (None, "")):
        return MASK
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, v) for v in value]
    if isinstance(value, str) and _ID_KEY.search(key) and len(value) > 4:
        return value[:4] + "..."  # an API key id: enough to recognise, not to use
    return value


def masked_settings(settings: AppSettings) -> dict[str, Any]:
    """Return the effective settings as plain data with every secret masked.

    Masks every ``SecretStr`` and every value whose key looks secret (``secret``,
    ``password``, ``token``, ...); API key ids (keys ending in ``key``) keep their
    first four characters.
    """
    raw = settings.model_dump(mode="python")
    if raw["storage"]["url"] is not None:  # a database URL may carry its password
        raw["storage"]["url"] = redact_url(raw["storage"]["url"])
    result: dict[str, Any] = _jsonable(_mask_value("", raw))
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def secret_values(settings: AppSettings) -> set[str]:
    """Return every secret string in the settings, for the log redaction processor.

    Includes each plugin's ``api_key:api_secret`` pair in HTTP Basic form (base64), so
    an ``Authorization`` header that slipped into a log line is caught too.
    """
    found: set[str] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for k in type(value).model_fields:
                walk(k, getattr(value, k))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(str(k), v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(key, v)
        elif isinstance(value, str) and is_secret_key(key):
            found.add(value)

    walk("", settings)
    if settings.storage.url is not None:
        found.update(url_password(settings.storage.url))
        found.add(os.environ.get("PGPASSWORD", ""))  # libpq's password, if it is used
    for tenant in settings.tenants.values():
        ps = tenant.plugin_settings
        key, secret = ps.get("api_key"), ps.get("api_secret")
        if isinstance(key, str) and isinstance(secret, str):
            found.add(base64.b64encode(f"{key}:{secret}".encode()).decode())
    return {s for s in found if len(s) >= 4}


def changed_tenants(old: AppSettings, new: AppSettings) -> tuple[list[str], list[str], list[str]]:
    """Return the enabled tenants ``(added, removed, changed)`` from ``old`` to ``new``.

    A tenant whose settings or effective defaults differ counts as changed.
    """
    before, after = set(old.enabled_tenants()), set(new.enabled_tenants())
    changed = [
        n
        for n in sorted(before & after)
        if old.tenant_config(n) != new.tenant_config(n)
        or old.tenant_schedule(n) != new.tenant_schedule(n)
    ]
    return sorted(after - before), sorted(before - after), changed


def restart_only_changes(old: AppSettings, new: AppSettings) -> list[str]:
    """Return the sections that changed but take effect only after a restart."""
    sections: Iterable[str] = ("storage", "http", "daemon", "emitters", "plugins_path")
    out = [s for s in sections if getattr(old, s) != getattr(new, s)]
    if old.scheduling.max_concurrent_tenants != new.scheduling.max_concurrent_tenants:
        out.append("scheduling.max_concurrent_tenants")
    return out


# -- checks against the plugins ------------------------------------------------------------


async def validate_settings(
    settings: AppSettings, source: str, *, registry: PluginRegistry | None = None
) -> PluginRegistry:
    """Check what pydantic cannot: ecosystems, emitter types and every plugin_settings.

    Each enabled tenant's plugin is created, initialized with its ``plugin_settings``
    (the plugin's own pydantic validation) and closed again.

    Returns:
        The plugin registry used, for the caller to create the real plugins from.

    Raises:
        ConfigError: naming the file, the field path and the problem.
    """
    from chargeback.core.emitters import registry as emitter_registry  # noqa: PLC0415
    from chargeback.core.plugin.registry import PluginRegistry  # noqa: PLC0415

    if registry is None:
        registry = PluginRegistry.discover(settings.plugins_path)
    known_emitters = emitter_registry.registered()
    for i, em in enumerate(settings.emitters):
        if em.type not in known_emitters:
            raise ConfigError(
                f"{source}: invalid settings: emitters.{i}.type: unknown emitter type "
                f"{em.type!r}; known: {', '.join(sorted(known_emitters))}",
                source=source,
                field=f"emitters.{i}.type",
            )
    known = registry.names()
    for name in settings.enabled_tenants():
        tenant = settings.tenants[name]
        field = f"tenants.{name}.ecosystem"
        if tenant.ecosystem not in known:
            why = registry.errors.get(tenant.ecosystem)
            detail = f" (it failed to load: {why})" if why else ""
            raise ConfigError(
                f"{source}: invalid settings: {field}: unknown ecosystem {tenant.ecosystem!r}"
                f"{detail}; known: {', '.join(sorted(known)) or '(none)'}",
                source=source,
                field=field,
            )
        try:
            plugin = registry.create(tenant.ecosystem)
        except PluginLoadError as exc:
            raise ConfigError(
                f"{source}: invalid settings: {field}: {exc}", source=source, field=field
            ) from exc
        try:
            plugin.initialize(dict(tenant.plugin_settings))
        except pydantic.ValidationError as exc:
            raise plugin_config_error(source, name, exc) from exc
        except ConfigError as exc:
            raise ConfigError(
                f"{source}: invalid settings: tenants.{name}.plugin_settings: {exc}",
                source=source,
                field=exc.field or f"tenants.{name}.plugin_settings",
            ) from exc
        finally:
            await plugin.close()
    return registry
