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

The package: the sections and loading here, :mod:`.secrets` (masking, the values the
log redacts), :mod:`.checks` (the plugins' validation, what a reload changed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from chargeback.core.budgets.config import BudgetSettings
from chargeback.core.engine.types import TenantConfig
from chargeback.core.ownership.config import OwnershipSettings
from chargeback.core.storage.factory import parse_url as parse_storage_url
from chargeback.errors import ConfigError
from chargeback.service.scheduling import cron_trigger
from chargeback.settings.checks import (
    changed_tenants,
    plugin_config_error,
    restart_only_changes,
    validate_settings,
)
from chargeback.settings.secrets import MASK, is_secret_key, masked_settings, secret_values

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
    usage_collection: str | None = "15 0 * * *"
    """Crontab expression, UTC: when every tenant's recent usage is fetched into the usage
    ledger (DESIGN §13), independent of billing, while the usage source still has it.
    ``null``: only runs collect (each run does, before its dates and with them)."""

    _cron = field_validator("schedule")(_check_cron)

    @field_validator("usage_collection")
    @classmethod
    def _collection_cron(cls, value: str | None) -> str | None:
        return None if value is None else _check_cron(value)


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
    budgets: BudgetSettings = BudgetSettings()  # per team (core/budgets/config.py)

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

    @model_validator(mode="after")
    def _budget_tenants(self) -> AppSettings:
        for rule in self.budgets.rules:
            if rule.tenant not in self.tenants:
                raise ValueError(f"budget {rule.name!r}: tenant {rule.tenant!r} is not configured")
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
    _check_file_tenants(source, data.get("tenants"))  # before the environment's tenants
    try:
        settings = AppSettings(**data)
    except pydantic.ValidationError as exc:
        raise _config_error(source, exc, file_tenants=data.get("tenants")) from exc
    _check_windows(source, settings)
    return settings


def _check_file_tenants(source: str, tenants: object) -> None:
    """Name a ``tenants:`` of the wrong shape or a bad tenant name in the file itself.

    Checked before pydantic sees the environment: a ``CHARGEBACK_TENANTS__<NAME>__...``
    variable would otherwise make the first problem reported "tenant not in the file".
    """
    if tenants is None:
        return
    if not isinstance(tenants, dict):
        raise ConfigError(
            f"{source}: invalid settings: tenants: expected a mapping of tenant name to its "
            f"settings (tenants: {{prod: {{ecosystem: ...}}}}), got a {type(tenants).__name__}",
            source=source,
            field="tenants",
        )
    for name in tenants:
        if not isinstance(name, str) or not _TENANT_NAME.match(name):
            raise ConfigError(
                f"{source}: invalid settings: tenants: tenant name {name!r} must be lowercase "
                "letters, digits and '_', starting with a letter or digit (so "
                "CHARGEBACK_TENANTS__<NAME>__... can address it), e.g. "
                f"{_suggest_name(str(name))!r}",
                source=source,
                field=f"tenants.{name}",
            )


def _suggest_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "prod"


def _check_windows(source: str, settings: AppSettings) -> None:
    """Refuse day windows that calculate nothing: ``cutoff_days`` must be below ``lookback_days``.

    A run calculates ``today - lookback_days`` .. ``today - cutoff_days``: at equal values
    that is one day, the same one recalculated every run, and above them none.
    """
    s = settings.scheduling
    checks = [("scheduling.cutoff_days", s.lookback_days, s.cutoff_days, "scheduling's")]
    for name in sorted(settings.tenants):
        tenant, cfg = settings.tenants[name], settings.tenant_config(name)
        if tenant.cutoff_days is None and tenant.lookback_days is None:
            continue  # the defaults, checked above
        key = "cutoff_days" if tenant.cutoff_days is not None else "lookback_days"
        checks.append((f"tenants.{name}.{key}", cfg.lookback_days, cfg.cutoff_days, "its"))
    for field, lookback, cutoff, whose in checks:
        if cutoff >= lookback:
            raise ConfigError(
                f"{source}: invalid settings: {field}: cutoff_days ({cutoff}) must be less than "
                f"{whose} lookback_days ({lookback}): a run calculates the dates from today - "
                "lookback_days to today - cutoff_days, so this window calculates "
                + ("one day only" if cutoff == lookback else "nothing"),
                source=source,
                field=field,
            )


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
