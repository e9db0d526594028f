"""Opening the SQLite backend's connections: pragmas, WAL, the read-only schema check.

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A transaction is
atomic in every case: a killed process (SIGKILL, OOM) loses nothing that committed,
and a half-written transaction is discarded when the file is next opened. Only an
OS crash or power loss can lose the last few *committed* transactions (NORMAL skips
the fsync per commit), and the database still opens consistent. That trade is safe
here because everything about a tenant-date (its lines, rows, plugin rows and
``date_state``) commits in one transaction: a lost commit just makes the date look
uncalculated, and the next run calculates it again. FULL would add an fsync to every
commit for no gain in consistency.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import aiosqlite

from chargeback.core.storage.migrations import CORE_MIGRATIONS, CORE_NAMESPACE, recorded_version
from chargeback.errors import StorageError

__all__ = ["check_read_only_schema", "connect"]


async def connect(path: str, *, busy_timeout_ms: int, read_only: bool) -> aiosqlite.Connection:
    """Open one connection to ``path`` (or ``":memory:"``) with the backend's pragmas.

    A read-only connection opens the file with ``mode=ro``; a writable one switches the
    file to WAL (persistent in the file: the first connection does it) with
    ``synchronous=NORMAL`` (see the module docstring).

    Raises:
        StorageError: the file cannot be switched to WAL mode.
        sqlite3.Error: the file cannot be opened (translated by the caller).
    """
    if read_only and path != ":memory:":
        pending = aiosqlite.connect(_read_only_uri(path), uri=True, isolation_level=None)
    else:
        pending = aiosqlite.connect(path, isolation_level=None)
    try:
        conn = await pending
    except BaseException:
        await _join_worker(pending)
        raise
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA temp_store = MEMORY")
        await conn.execute("PRAGMA cache_size = -32000")  # 32 MB page cache
        if not read_only:
            modes = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            _check_wal(path, str(next(iter(modes))[0]))
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA journal_size_limit = 67108864")  # 64 MB WAL
    except BaseException:
        await conn.close()
        raise
    return conn


def _read_only_uri(path: str) -> str:
    return Path(path).absolute().as_uri() + "?mode=ro"


def _check_wal(path: str, mode: str) -> None:
    if mode.lower() != "wal" and path != ":memory:":
        raise StorageError(
            f"cannot switch {path} to WAL mode (got {mode!r}); "
            "use a local filesystem (WAL needs shared memory)"
        )


async def check_read_only_schema(conn: aiosqlite.Connection, path: str) -> None:
    """Refuse a database a read-only backend cannot read: no schema, older or newer.

    Raises:
        StorageError: saying which, and what to do.
    """
    tables = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    )
    if not list(tables):
        raise StorageError(
            f"the database {path} has no chargeback schema; run chargeback "
            "against it once (not read-only) to create it"
        )
    known = CORE_MIGRATIONS[-1].version
    current = await recorded_version(conn, CORE_NAMESPACE)
    if current > known:
        raise StorageError(
            f"the database records schema version {current} of 'core', but this "
            f"chargeback knows only up to version {known}; upgrade chargeback"
        )
    if current < known:
        raise StorageError(
            f"the database {path} is at schema version {current} of 'core' and "
            f"this chargeback reads version {known}; start the daemon ('chargeback run') "
            "once to upgrade it"
        )


async def _join_worker(conn: aiosqlite.Connection) -> None:
    """Wait for the worker thread of a connection that failed to open.

    aiosqlite stops the thread itself when ``connect`` fails, and the thread then
    reports to the event loop; waiting here keeps that report from arriving after the
    loop has closed. (``_thread`` is aiosqlite's; without it there is nothing to wait for.)
    """
    thread = getattr(conn, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        await asyncio.to_thread(thread.join, 5.0)
