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
    ├── SourceError                  an ecosystem API failed after its retry budget
    │   └── AuthenticationError      credentials rejected (401/403)
    ├── AllocationError              an allocator or resolver broke its contract
    └── EmitError                    an emitter failed for a tenant-date
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "AuthenticationError",
    "ChargebackError",
    "ConfigError",
    "EmitError",
    "PluginError",
    "PluginLoadError",
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


class AllocationError(ChargebackError):
    """An allocator or identity resolver broke its contract."""


class EmitError(ChargebackError):
    """An emitter failed for one tenant and date.

    Attributes:
        emitter: the emitter's configured name.
    """

    def __init__(self, message: str, *, emitter: str):
        super().__init__(message)
        self.emitter = emitter
