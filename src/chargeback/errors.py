"""The one exception tree of chargeback.

Third-party errors (httpx, sqlite3, pydantic) are translated once, at the boundary
where they happen, with ``raise ... from exc``. Every exception carries its data as
attributes and a message that says what was expected, what was found and how to fix it.
Messages never contain secrets.

::

    ChargebackError
    ├── ConfigError                  settings file or plugin_settings invalid (exit 2)
    ├── PluginError                  a plugin could not be loaded or used
    │   └── PluginLoadError          import failed, no register(), wrong shape
    ├── StorageError                 the database failed (locked, read-only, full, corrupt)
    ├── QueryError                   a read query (API, export) was malformed (HTTP 400, exit 2)
    └── SourceError                  an ecosystem API failed after its retry budget
        └── AuthenticationError      credentials rejected (401/403)

Two failures are deliberately not exceptions of this tree, because nothing may stop on
them: an allocator or identity resolver that raises or breaks its contract sends the
line to ``UNALLOCATED`` with the rule ``allocator_error`` (or ``resolver_error``) and
the reason on the row, and an emitter that fails has its error recorded for that
tenant, emitter and date and is retried by the next run.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ChargebackError",
    "ConfigError",
    "PluginError",
    "PluginLoadError",
    "QueryError",
    "SourceError",
    "StorageError",
]


class ChargebackError(Exception):
    """Base of every error chargeback raises on purpose."""


class ConfigError(ChargebackError):
    """Settings are invalid.

    Attributes:
        source: the file (or ``"environment"``) the bad value came from.
        field: the dotted path of the bad field, if known.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        super().__init__(message)
        self.source = source
        self.field = field


class PluginError(ChargebackError):
    """A plugin failed.

    Attributes:
        plugin: the plugin's name.
    """

    def __init__(self, message: str, *, plugin: str):
        super().__init__(message)
        self.plugin = plugin


class PluginLoadError(PluginError):
    """A plugin package could not be imported, lacks ``register()``, or has the wrong shape."""


class StorageError(ChargebackError):
    """The database failed; nothing was half-written."""


class QueryError(ChargebackError):
    """A read query (the query API, ``chargeback export``) asked for something malformed.

    Attributes:
        parameter: the query parameter at fault (``window``, ``aggregate``, ...).
    """

    def __init__(self, message: str, *, parameter: str):
        super().__init__(message)
        self.parameter = parameter


class SourceError(ChargebackError):
    """An ecosystem API request failed after its retry budget.

    Attributes:
        url: the request URL without credentials.
        status: the last HTTP status, or ``None`` for a transport error.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class AuthenticationError(SourceError):
    """The API rejected the credentials (401 or 403)."""
