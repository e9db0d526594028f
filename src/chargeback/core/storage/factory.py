"""The one place that picks the storage backend from the settings (DESIGN §7, §18).

Every process that opens the database (the daemon, ``chargeback rerun`` and
``reconcile``, the HTTP server's read-only handle) goes through :func:`make_backend`
or :func:`open_backend`, so a new backend is one more entry in :data:`_BUILDERS`::

    storage.path: ./var/chargeback.db            the embedded SQLite file (the default)
    storage.url:  sqlite:///var/chargeback.db    the same file, as a URL
    storage.url:  sqlite:////data/chargeback.db  an absolute path (four slashes)
    storage.url:  postgresql://user@host:5432/db  a PostgreSQL database (DESIGN §18)

A ``sqlite`` URL follows the convention of SQLAlchemy and dj-database-url: everything
after ``sqlite:///`` is the path as written, so three slashes give a relative path and
four an absolute one; ``sqlite:///:memory:`` is a private in-memory database.

A ``postgresql`` (or ``postgres``) URL is a libpq connection URI, handed to psycopg as it
is: whatever it leaves out comes from libpq's environment (``PGPASSWORD``, ``PGPASSFILE``,
``PGHOST``, ``PGUSER``, ``PGSSLMODE``...), so the password never needs to be in the settings
file; a URL with a password in it belongs in ``CHARGEBACK_STORAGE__URL``, from a secret.
Either way the password is never logged: every message names the database by
:func:`redact_url`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from chargeback.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from chargeback.core.storage.backend import StorageBackend

__all__ = [
    "StorageConfig",
    "StorageLocation",
    "make_backend",
    "open_backend",
    "parse_url",
    "redact_url",
    "url_password",
]

_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})


class StorageConfig(Protocol):
    """Protocol: what the factory reads (``chargeback.settings.StorageSettings`` has it).

    Attributes:
        path: the SQLite file, used when ``url`` is not set.
        url: a database URL (``sqlite:///PATH``), or ``None``.
        writer_process_min_rows: SQLite's writer child threshold (``None``: never).
    """

    @property
    def path(self) -> Path: ...

    @property
    def url(self) -> str | None: ...

    @property
    def writer_process_min_rows(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class StorageLocation:
    """Where the database is: a backend's scheme and what that backend needs to find it.

    Attributes:
        scheme: the backend (``"sqlite"`` or ``"postgresql"``).
        path: the SQLite file (or ``":memory:"``); empty for PostgreSQL.
        dsn: PostgreSQL's connection URI as given (it may hold a password, so it is left
            out of the repr); empty for SQLite.
    """

    scheme: str
    path: Path = Path()
    dsn: str = field(default="", repr=False)

    @property
    def display(self) -> str:
        """Where the database is, fit for a log line or an error (no password)."""
        return redact_url(self.dsn) if self.dsn else str(self.path)


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and of a ``password=`` query as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = userinfo.split(":", 1)[0] + ":***@" + hostport
    path, question, query = tail.partition("?")
    if question:
        parts = query.split("&")
        query = "&".join("password=***" if p.lower().startswith("password=") else p for p in parts)
    return f"{scheme}{sep}{netloc}{slash}{path}{question}{query}"


def url_password(url: str) -> set[str]:
    """The passwords a database URL carries (user part, ``password=`` query), as written
    and percent-decoded, so the log redaction can cut them out wherever they appear."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found.update({parts.password, unquote(parts.password)})
    for key, value in parse_qsl(parts.query):
        if key.lower() == "password" and value:
            found.add(value)
    return found


def parse_url(url: str) -> StorageLocation:
    """Return the location a storage URL names.

    Raises:
        ConfigError: the scheme is unknown, or the URL is malformed; the message says
            what is accepted (field ``storage.url``) and never shows a password.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise _url_error(
            f"expected a URL like sqlite:///var/chargeback.db or postgresql://host/db, "
            f"got {redact_url(url)!r}"
        )
    if scheme in _POSTGRES_SCHEMES:
        return _postgres_location(url)
    if scheme != "sqlite":
        raise _url_error(
            f"unknown storage scheme {scheme!r}; expected sqlite:///PATH or postgresql://..."
        )
    if not rest.startswith("/") or rest == "/":
        raise _url_error(
            f"a sqlite URL names a file after three slashes, got {url!r}; e.g. "
            "sqlite:///var/chargeback.db (relative) or sqlite:////data/chargeback.db"
        )
    if "?" in rest or "#" in rest:
        raise _url_error(f"a sqlite URL takes no query or fragment, got {url!r}")
    return StorageLocation("sqlite", Path(rest[1:]))


def _postgres_location(url: str) -> StorageLocation:
    """Check what a PostgreSQL URI can be checked for without connecting."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a non-numeric port raises here
    except ValueError as exc:
        raise _url_error(f"malformed PostgreSQL URL {redact_url(url)!r}: {exc}") from exc
    if parts.fragment:
        raise _url_error(f"a PostgreSQL URL takes no fragment, got {redact_url(url)!r}")
    return StorageLocation("postgresql", dsn=url)


def _url_error(message: str) -> ConfigError:
    return ConfigError(f"storage.url: {message}", field="storage.url")


def location_of(config: StorageConfig) -> StorageLocation:
    """Return where ``config`` puts the database (``url`` wins over ``path``)."""
    if config.url is not None:
        return parse_url(config.url)
    return StorageLocation("sqlite", config.path)


def _sqlite(location: StorageLocation, config: StorageConfig, *, read_only: bool) -> StorageBackend:
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415  (keeps CLI light)

    path = location.path
    if str(path) == ":memory:":
        return SQLiteBackend(":memory:", read_only=read_only)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the database's directory {path.parent}: {exc.strerror}; "
                "create it, or point storage.path at a writable place"
            ) from exc
    return SQLiteBackend(
        path, read_only=read_only, writer_process_min_rows=config.writer_process_min_rows
    )


def _postgresql(
    location: StorageLocation, config: StorageConfig, *, read_only: bool
) -> StorageBackend:
    from chargeback.core.storage.postgres import PostgresBackend  # noqa: PLC0415

    return PostgresBackend(location.dsn, read_only=read_only)


_BUILDERS: dict[str, Callable[..., StorageBackend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
}
"""Scheme -> ``builder(location, config, *, read_only)`` of an unopened backend."""


def make_backend(config: StorageConfig, *, read_only: bool = False) -> StorageBackend:
    """Return the backend ``config`` names, not yet opened (``await backend.open()``).

    A writable SQLite backend gets its file's directory created. A read-only one never
    writes: it serves a second process (``chargeback reconcile``) or a second event
    loop (the HTTP server's) beside the daemon, which stays the single writer.

    Raises:
        ConfigError: ``storage.url`` names no backend this version has.
        StorageError: the database's directory cannot be created.
    """
    location = location_of(config)
    return _BUILDERS[location.scheme](location, config, read_only=read_only)


@asynccontextmanager
async def open_backend(
    config: StorageConfig, *, read_only: bool = False
) -> AsyncIterator[StorageBackend]:
    """Open the backend ``config`` names for the ``async with`` block, then close it.

    Raises:
        ConfigError: ``storage.url`` names no backend this version has.
        StorageError: the database could not be opened.
    """
    backend = make_backend(config, read_only=read_only)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
