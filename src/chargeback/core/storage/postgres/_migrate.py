"""Ordered migrations on PostgreSQL, recorded in ``schema_migrations`` as on SQLite.

Several replicas may start at once against one database. Every step runs in its own
transaction holding a transaction-level advisory lock, re-checks under that lock whether
another process applied it meanwhile, and commits together with its record, so a step is
applied exactly once and PostgreSQL's transactional DDL makes a failed step leave nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import psycopg

from chargeback.core.plugin.protocols import Migration
from chargeback.errors import StorageError

__all__ = ["MIGRATION_LOCK", "apply_migrations", "ensure_migrations_table", "recorded_version"]

MIGRATION_LOCK = 0x63686172  # "char": the advisory lock key of schema changes

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace  TEXT NOT NULL,
    version    BIGINT NOT NULL,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (namespace, version)
)
"""


async def ensure_migrations_table(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    """Create ``schema_migrations`` if missing (under the lock: concurrent creates race)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(_SCHEMA_MIGRATIONS)


async def has_migrations_table(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    """Whether the database has a chargeback schema at all."""
    cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    row = await cur.fetchone()
    return bool(row and row[0])


async def recorded_version(
    conn: psycopg.AsyncConnection[tuple[object, ...]], namespace: str
) -> int:
    """The newest applied version of ``namespace`` (0: none)."""
    cur = await conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE namespace = %s",
        (namespace,),
    )
    row = await cur.fetchone()
    return int(str(row[0])) if row else 0


async def apply_migrations(
    conn: psycopg.AsyncConnection[tuple[object, ...]],
    namespace: str,
    migrations: Sequence[Migration],
    *,
    now: dt.datetime,
) -> list[int]:
    """Apply the steps of ``namespace`` not yet recorded; return the versions applied.

    ``conn`` is in autocommit mode with no transaction open; ``migrations`` are
    already in PostgreSQL's dialect.

    Raises:
        StorageError: the database records a newer version than ``migrations`` know.
        psycopg.Error: a step failed (it was rolled back); the caller translates it.
    """
    known = migrations[-1].version if migrations else 0
    current = await recorded_version(conn, namespace)
    if current > known:
        raise StorageError(
            f"the database records schema version {current} of {namespace!r}, but this "
            f"chargeback knows only up to version {known}; upgrade chargeback (or the "
            "plugin) to the version that wrote this database, or use another database"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version <= current:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur = await conn.execute(
                "SELECT 1 FROM schema_migrations WHERE namespace = %s AND version = %s",
                (namespace, migration.version),
            )
            if await cur.fetchone() is None:  # another replica may have applied it
                await conn.execute(migration.sql.encode())  # several statements, no params
                await conn.execute(
                    "INSERT INTO schema_migrations (namespace, version, name, applied_at) "
                    "VALUES (%s, %s, %s, %s)",
                    (namespace, migration.version, migration.name, now),
                )
                applied.append(migration.version)
    return applied
