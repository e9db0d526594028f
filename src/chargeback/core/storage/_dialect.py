"""What differs between the core backends' SQL, so one statement serves both.

Statements are written once, in SQLite's form (``?`` markers). A :class:`Dialect` says
how a backend marks a parameter, stores dates and times (ISO text on SQLite,
``DATE``/``TIMESTAMPTZ`` on PostgreSQL), reads them back and runs a statement on its
connection. Code that holds a connection of either backend takes a dialect and
calls its methods; the transactions stay the backend's own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chargeback.core.storage._util import datetime_to_text, opt_datetime_from_text

__all__ = ["POSTGRES", "SQLITE", "Dialect", "pg"]


def pg(sql: str) -> str:
    """SQLite's ``?`` markers as psycopg's ``%s`` (the statements have no literal ``?``)."""
    return sql.replace("?", "%s")


def _as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Dialect:
    """One backend's parameter marker, value codecs and statement runners."""

    name: str
    sql: Callable[[str], str]
    """A ``?``-marked statement in this backend's form."""
    date: Callable[[dt.date], Any]
    time: Callable[[dt.datetime], Any]
    read_time: Callable[[Any], dt.datetime | None]
    """A stored optional time as an aware datetime (or ``None``)."""
    fetch: Callable[[Any, str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]
    execute: Callable[[Any, str, Sequence[Any]], Awaitable[int]]
    """Run one statement; return the number of rows it changed."""
    executemany: Callable[[Any, str, Sequence[Sequence[Any]]], Awaitable[None]]
    serialize: str | None = None
    """Run first in a transaction that reads then writes a tenant's rule versions, so
    replicas starting one tenant at once record its rules once (SQLite: its write lock)."""

    def opt_time(self, value: dt.datetime | None) -> Any:
        """An optional time as this backend stores it."""
        return None if value is None else self.time(value)


async def _sqlite_fetch(conn: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await conn.execute_fetchall(sql, params)]


async def _pg_fetch(conn: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql, params)
    return [tuple(r) for r in await cur.fetchall()]


async def _execute(conn: Any, sql: str, params: Sequence[Any]) -> int:
    cursor = await conn.execute(sql, params)
    return int(cursor.rowcount)


async def _sqlite_many(conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    await conn.executemany(sql, rows)


async def _pg_many(conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(sql, rows)


def _pg_time(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


SQLITE = Dialect(
    "sqlite", _as_is, dt.date.isoformat, datetime_to_text, opt_datetime_from_text,
    _sqlite_fetch, _execute, _sqlite_many,
)  # fmt: skip
POSTGRES = Dialect(
    "postgresql", pg, _as_is, _pg_time, _as_is, _pg_fetch, _execute, _pg_many,
    serialize="SELECT pg_advisory_xact_lock(hashtext('ownership rules ' || %s))",
)  # fmt: skip
