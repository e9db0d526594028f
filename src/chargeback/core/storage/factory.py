"""The one place that picks the storage backend from the settings (DESIGN §7, §18).

Every process that opens the database (the daemon, ``chargeback rerun`` and
``reconcile``, the HTTP server's read-only handle) goes through :func:`make_backend`
or :func:`open_backend`, so a new backend is one more entry in :data:`_BUILDERS`::

    storage.path: ./var/chargeback.db            the embedded SQLite file (the default)
    storage.url:  sqlite:///var/chargeback.db    the same file, as a URL
    storage.url:  sqlite:////data/chargeback.db  an absolute path (four slashes)
    storage.url:  postgresql://...               refused for now: not available yet

A ``sqlite`` URL follows the convention of SQLAlchemy and dj-database-url: everything
after ``sqlite:///`` is the path as written, so three slashes give a relative path and
four an absolute one; ``sqlite:///:memory:`` is a private in-memory database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chargeback.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from chargeback.core.storage.backend import StorageBackend

__all__ = ["StorageConfig", "StorageLocation", "make_backend", "open_backend", "parse_url"]

_PLANNED = {"postgresql": "PostgreSQL", "postgres": "PostgreSQL"}
"""Schemes that name a backend this version does not have yet, with its name."""


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
        scheme: the backend (``"sqlite"``).
        path: the SQLite file (or ``":memory:"``).
    """

    scheme: str
    path: Path


def parse_url(url: str) -> StorageLocation:
    """Return the location a storage URL names.

    Raises:
        ConfigError: the scheme is unknown, names a backend not available yet, or the
            URL has no path; the message says what is accepted (field ``storage.url``).
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise _url_error(f"expected a URL like sqlite:///var/chargeback.db, got {url!r}")
    if scheme in _PLANNED:
        raise _url_error(
            f"{_PLANNED[scheme]} storage is not available yet (it is planned); use "
            "storage.path or a sqlite:///PATH URL for the embedded SQLite database"
        )
    if scheme != "sqlite":
        raise _url_error(f"unknown storage scheme {scheme!r}; expected sqlite:///PATH")
    if not rest.startswith("/") or rest == "/":
        raise _url_error(
            f"a sqlite URL names a file after three slashes, got {url!r}; e.g. "
            "sqlite:///var/chargeback.db (relative) or sqlite:////data/chargeback.db"
        )
    if "?" in rest or "#" in rest:
        raise _url_error(f"a sqlite URL takes no query or fragment, got {url!r}")
    return StorageLocation("sqlite", Path(rest[1:]))


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


_BUILDERS: dict[str, Callable[..., StorageBackend]] = {"sqlite": _sqlite}
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
