"""``chargeback copy-db``: move a SQLite installation to PostgreSQL without recomputing.

Every stored row moves as it is: billing lines, chargeback rows (in their stored order),
date states with their fingerprints and ``calc_seq`` (so the daemon on the target finds
every date already calculated and emitted), runs, rerun requests, emissions, the
inventory, and the plugin tables. A plugin table is created on the target from the
source's own DDL (``sqlite_master``, the shape after all its migrations, mapped by
:func:`~chargeback.core.storage.postgres.schema.plugin_sql`) and its namespace's
versions are recorded as the source records them, so the plugin's later migrations
apply on the target as they would have on the source.

The copy is one PostgreSQL transaction into an empty database (a target with any
chargeback data is refused: nothing stored is overwritten), then verified through the
storage protocol on both sides, per tenant: the same date states, the same reconcile
report and the same rows of every date. Any difference is reported; the source is only
ever read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from chargeback.core.storage._transaction import CORE_TABLES
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.postgres import PostgresBackend
from chargeback.core.storage.postgres._errors import DB_ERRORS
from chargeback.core.storage.postgres.schema import plugin_sql
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError

__all__ = ["CopyReport", "copy_sqlite_to_postgres", "verify_copy"]

_BATCH = 5_000
_ORDER = {
    "chargeback_rows": "row_id",
    "runs": "rowid",
    "rerun_requests": "request_id",
    "restatements": "restatement_id",
}
"""Tables whose stored order matters: PostgreSQL numbers their identity in copy order."""
_FIRST = ("date_state",)  # emissions reference it
_ALL_TIME = (dt.date(1, 1, 1), dt.date(9999, 12, 31))


@dataclass(slots=True)
class CopyReport:
    """What a copy moved and what its verification found.

    Attributes:
        rows: table -> rows copied.
        tenants: the tenants verified.
        problems: every difference found (empty: the copy is verified).
    """

    rows: dict[str, int] = field(default_factory=dict)
    tenants: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every tenant read back the same on both sides."""
        return not self.problems


def _sqlite_tables(src: sqlite3.Connection) -> tuple[list[str], dict[str, list[str]]]:
    """The core tables and the plugin tables with their DDL (tables and indexes)."""
    rows = src.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    core = [str(r[1]) for r in rows if r[0] == "table" and r[1] in CORE_TABLES]
    plugins: dict[str, list[str]] = {}
    for kind, _name, table, ddl in rows:
        if table not in CORE_TABLES and kind in ("table", "index"):
            plugins.setdefault(str(table), []).append(str(ddl))
    return core, plugins


def _open_read_only(path: Path) -> sqlite3.Connection:
    """The source file, read-only (the copy runs as a one-off command: blocking reads)."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)


def _columns_sqlite(src: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in src.execute(f'PRAGMA table_info("{table}")')]


async def _columns_pg(conn: psycopg.AsyncConnection[Any], table: str) -> list[str]:
    cur = await conn.execute(  # GENERATED ALWAYS identities number the rows anew
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "AND table_schema = current_schema() AND COALESCE(identity_generation, '') <> 'ALWAYS' "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in await cur.fetchall()]


def _chunks(src: sqlite3.Connection, query: str) -> Iterator[list[tuple[Any, ...]]]:
    cursor = src.execute(query)
    while batch := cursor.fetchmany(_BATCH):
        yield batch


async def _refuse_non_empty(conn: psycopg.AsyncConnection[Any], where: str) -> None:
    cur = await conn.execute(
        "SELECT (SELECT COUNT(*) FROM date_state) + (SELECT COUNT(*) FROM runs) "
        "+ (SELECT COUNT(*) FROM resources) + (SELECT COUNT(*) FROM rerun_requests)"
    )
    row = await cur.fetchone()
    if row and int(row[0]):
        raise StorageError(
            f"the target database {where} already holds chargeback data; copy-db only "
            "copies into an empty database, so nothing stored there is overwritten"
        )


async def _create_plugin_tables(
    conn: psycopg.AsyncConnection[Any], src: sqlite3.Connection, plugins: dict[str, list[str]]
) -> None:
    recorded = src.execute(
        "SELECT namespace, version, name, applied_at FROM schema_migrations "
        "WHERE namespace <> 'core' ORDER BY namespace, version"
    ).fetchall()
    for namespace, version, name, applied_at in recorded:
        await conn.execute(
            "INSERT INTO schema_migrations (namespace, version, name, applied_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (namespace, version, name, applied_at),
        )
    for ddls in plugins.values():
        for ddl in ddls:
            text = plugin_sql(ddl)
            if text.lstrip().upper().startswith("CREATE TABLE ") and "IF NOT EXISTS" not in text:
                text = text.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
            if text.lstrip().upper().startswith("CREATE INDEX ") and "IF NOT EXISTS" not in text:
                text = text.replace("CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1)
            await conn.execute(text.encode())


async def _copy_table(
    conn: psycopg.AsyncConnection[Any], src: sqlite3.Connection, table: str
) -> int:
    target = await _columns_pg(conn, table)
    if not target:
        raise StorageError(f"the target has no table {table!r} to copy into")
    columns = [c for c in _columns_sqlite(src, table) if c in target]
    order = _ORDER.get(table, "rowid") if table != "schema_migrations" else "namespace, version"
    quoted = ", ".join(f'"{c}"' for c in columns)
    try:
        query = f'SELECT {quoted} FROM "{table}" ORDER BY {order}'
        src.execute(query + " LIMIT 0")
    except sqlite3.OperationalError:  # a WITHOUT ROWID table: its key order
        query = f'SELECT {quoted} FROM "{table}"'
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        for batch in _chunks(src, query):
            for values in batch:
                await copy.write_row(values)
            count += len(batch)
    return count


async def copy_sqlite_to_postgres(source: Path, target_dsn: str) -> CopyReport:
    """Copy the SQLite file ``source`` into the empty PostgreSQL database ``target_dsn``.

    Raises:
        StorageError: the source is not a current chargeback database, the target
            cannot be reached, holds data already, or the copy failed (rolled back).
    """
    async with SQLiteBackend(source, read_only=True, writer_process_min_rows=None):
        pass  # refuses a file that is not a chargeback database at the current version
    target = PostgresBackend(target_dsn)
    await target.open()  # applies the core migrations
    report = CopyReport()
    src = _open_read_only(source)
    try:
        core, plugins = _sqlite_tables(src)
        async with target.connection("copying into the target") as conn:
            try:
                async with conn.transaction():
                    await _refuse_non_empty(conn, target.display)
                    await _create_plugin_tables(conn, src, plugins)
                    ordered = [*_FIRST, *(t for t in core if t not in _FIRST)]
                    for table in ordered:
                        if table != "schema_migrations":
                            report.rows[table] = await _copy_table(conn, src, table)
                    for table in plugins:
                        report.rows[table] = await _copy_table(conn, src, table)
                    await conn.execute(
                        "SELECT setval(pg_get_serial_sequence('rerun_requests', 'request_id'),"
                        " GREATEST((SELECT MAX(request_id) FROM rerun_requests), 1))"
                    )
            except DB_ERRORS as exc:
                raise target.storage_error(exc, "copying into the target") from None
    finally:
        src.close()
        await target.close()
    return report


async def _rows_digest(store: StorageBackend, tenant: str, days: Sequence[dt.date]) -> str:
    digest = hashlib.sha256()
    for day in days:
        for row in await store.read_rows(tenant, day):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


async def verify_copy(
    source: StorageBackend, target: StorageBackend, report: CopyReport
) -> CopyReport:
    """Compare every tenant through the protocol on both sides; record any difference."""
    tenants = await source.tenants()
    if await target.tenants() != tenants:
        report.problems.append(f"tenants differ: {tenants} vs {await target.tenants()}")
    for tenant in tenants:
        report.tenants.append(tenant)
        states = await source.get_date_states(tenant, *_ALL_TIME)
        if await target.get_date_states(tenant, *_ALL_TIME) != states:
            report.problems.append(f"{tenant}: the date states differ")
        if await target.reconcile(tenant, *_ALL_TIME) != await source.reconcile(tenant, *_ALL_TIME):
            report.problems.append(f"{tenant}: the reconcile reports differ")
        days = sorted(states)
        if await _rows_digest(source, tenant, days) != await _rows_digest(target, tenant, days):
            report.problems.append(f"{tenant}: the chargeback rows differ")
        if await source.load_inventory(tenant) != await target.load_inventory(tenant):
            report.problems.append(f"{tenant}: the inventory differs")
        if await source.read_usage(tenant, *_ALL_TIME) != await target.read_usage(
            tenant, *_ALL_TIME
        ):
            report.problems.append(f"{tenant}: the usage ledger differs")
    return report
