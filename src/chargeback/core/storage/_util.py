"""Small helpers of the SQLite backend: value encoding, rollback, error translation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import sqlite3
from collections.abc import Callable, Mapping
from typing import TypeVar

import aiosqlite
import structlog

from chargeback.core.jsontext import compact_sorted
from chargeback.errors import StorageError

__all__ = [
    "attrs_from_text",
    "attrs_to_text",
    "check_identifier",
    "date_from_text",
    "datetime_from_text",
    "datetime_to_text",
    "opt_datetime_from_text",
    "opt_datetime_to_text",
    "rollback_quietly",
    "translate_error",
]

log = structlog.get_logger(__name__)

_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Primary SQLite result codes (https://sqlite.org/rescode.html).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_CONSTRAINT = 19
_SQLITE_NOTADB = 26


def datetime_to_text(value: dt.datetime) -> str:
    """Encode a datetime as ISO-8601 UTC text with microseconds (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def opt_datetime_to_text(value: dt.datetime | None) -> str | None:
    """Encode an optional datetime (see :func:`datetime_to_text`)."""
    return None if value is None else datetime_to_text(value)


def datetime_from_text(text: str) -> dt.datetime:
    """Decode :func:`datetime_to_text` output into an aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def opt_datetime_from_text(text: str | None) -> dt.datetime | None:
    """Decode an optional datetime."""
    return None if text is None else datetime_from_text(text)


def date_from_text(text: str) -> dt.date:
    """Decode an ISO date."""
    return dt.date.fromisoformat(text)


def attrs_to_text(attributes: Mapping[str, str]) -> str:
    """Encode an attributes mapping as canonical JSON (sorted keys)."""
    if not attributes:
        return "{}"
    return compact_sorted(dict(attributes))  # = json.dumps(sort_keys=True, compact)


def attrs_from_text(text: str | None) -> dict[str, str]:
    """Decode an attributes JSON object."""
    if not text or text == "{}":
        return {}
    value = json.loads(text)
    return {str(k): str(v) for k, v in value.items()}


def check_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier; raise StorageError otherwise."""
    if not _IDENTIFIER_RE.match(name):
        raise StorageError(
            f"{what} {name!r} is not a plain SQL identifier; use letters, digits and '_'"
        )
    return name


async def rollback_quietly(conn: aiosqlite.Connection) -> None:
    """Roll back the open transaction, even if the calling task is being cancelled.

    The rollback is queued on the connection's thread at once and shielded, so a
    second cancellation cannot skip it; operations queued later run after it. A
    rollback with no open transaction (the commit already went through) is ignored.
    """
    try:
        await asyncio.shield(conn.rollback())
    except (sqlite3.Error, ValueError) as exc:
        log.debug("rollback skipped", error=str(exc))


_T = TypeVar("_T")


async def run_in_connection(conn: aiosqlite.Connection, fn: Callable[..., _T], *args: object) -> _T:
    """Run ``fn(sqlite3_connection, *args)`` on the connection's own thread, in one hop.

    aiosqlite sends every statement to its thread and back; a transaction of ten
    statements then waits ten times for the event loop, which may be busy with CPU
    work. This queues one function on that thread instead (aiosqlite's ``_execute``,
    the primitive all its methods use; pinned by ``uv.lock`` and covered by the
    storage tests). The function runs after everything queued before it, as any
    aiosqlite call does, and finishes even if the awaiting task is cancelled.
    """
    sqlite_conn = conn._conn
    result: _T = await conn._execute(fn, sqlite_conn, *args)  # type: ignore[no-untyped-call]
    return result


def translate_error(exc: BaseException, action: str, path: str) -> StorageError:
    """Turn a sqlite3/aiosqlite failure into a :class:`StorageError` that says what to do.

    Args:
        exc: the sqlite3 error (or ``OverflowError`` / aiosqlite's ``ValueError``).
        action: what was being done, e.g. ``"commit tenant t date 2024-05-01"``.
        path: the database file.
    """
    if isinstance(exc, OverflowError):
        return StorageError(
            f"{action} failed: an amount does not fit a 64-bit integer of minor units "
            f"(±9.2e18 nanos); {exc}"
        )
    if isinstance(exc, ValueError) and not isinstance(exc, sqlite3.Error):
        text = str(exc).lower()
        if "closed" in text or "no active connection" in text:
            return StorageError(f"{action} failed: the database {path} is not open ({exc})")
        return StorageError(
            f"{action} failed: the database {path} holds an unreadable value ({exc})"
        )
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    detail = f"({name}: {exc})"
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        message = (
            f"the database {path} is locked by another connection and stayed locked past "
            "the busy timeout; make sure only one chargeback process writes this file, "
            "or raise the busy timeout"
        )
    elif primary == _SQLITE_READONLY:
        message = (
            f"the database {path} is read-only; make the file and its directory writable "
            "(WAL mode creates -wal and -shm files next to it)"
        )
    elif primary == _SQLITE_FULL:
        message = f"the disk holding {path} is full; free space, nothing of this write was kept"
    elif primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        message = (
            f"the database {path} is corrupt or not a chargeback database; restore it from "
            "a backup or point chargeback at a new file"
        )
    elif primary == _SQLITE_CANTOPEN:
        message = (
            f"cannot open the database {path}; check that its directory exists and is writable"
        )
    elif primary == _SQLITE_IOERR:
        message = f"disk I/O error on the database {path}; check the disk and the filesystem"
    elif primary == _SQLITE_CONSTRAINT:
        message = "a database constraint was violated, so nothing was written"
    else:
        message = f"the database {path} failed"
    return StorageError(f"{action} failed: {message} {detail}")
