"""Daily rollups of the chargeback rows for the query API (issue 19's "Fast"), on SQLite.

A large organisation's day has ~50k rows and a 90-day question reads ~4.8 M of them;
most questions group by few dimensions, whose groups per day are far fewer. Two
rollups keep them, per tenant and date:

    query_rollup_product(tenant_id, date, product_type, product_category, env_id,
                         cost_type, amount)                      ~100 groups a day
    query_rollup_identity(tenant_id, date, identity_id, cost_type, amount)
                                                                 ~3.4k groups a day

and ``query_rollup_state(tenant_id, date, calc_seq)`` says which calculation of the
date they sum. :func:`refresh_rollup` rebuilds one date in one ``BEGIN IMMEDIATE``
transaction from the date's row range as it stands, reading its ``calc_seq`` inside
the same transaction, so a rollup is always the exact sum of the rows of the
calculation it names. Readers (:mod:`.query_sqlite`) use a date's rollup only while
that ``calc_seq`` is the date's current one and read the rows otherwise: a rollup can
be missing or behind, never wrong. The ``query_rollup`` emitter
(:mod:`chargeback.core.emitters.query_rollup`) refreshes every committed date after
the commit, and on an existing database catches up on every date, since each is
pending for a new emitter.

The tables belong to their own migration namespace (``query_rollup``), applied by
:func:`refresh_rollup` on first use.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiosqlite

from chargeback.core.plugin.protocols import Migration
from chargeback.core.storage._util import rollback_quietly, translate_error
from chargeback.core.storage.migrations import apply_migrations, ensure_migrations_table

__all__ = ["NAMESPACE", "ROLLUPS", "ROLLUP_MIGRATIONS", "refresh_rollup"]

NAMESPACE = "query_rollup"

_SCHEMA = """
CREATE TABLE query_rollup_state (
    tenant_id TEXT NOT NULL,
    date      TEXT NOT NULL,
    calc_seq  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date)
) WITHOUT ROWID;
CREATE TABLE query_rollup_product (
    tenant_id        TEXT NOT NULL,
    date             TEXT NOT NULL,
    product_type     TEXT NOT NULL,
    product_category TEXT NOT NULL,
    env_id           TEXT NOT NULL,
    cost_type        TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, product_type, product_category, env_id, cost_type)
) WITHOUT ROWID;
CREATE TABLE query_rollup_identity (
    tenant_id   TEXT NOT NULL,
    date        TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    cost_type   TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, identity_id, cost_type)
) WITHOUT ROWID;
"""

ROLLUP_MIGRATIONS = (Migration(1, "daily rollups for the query API", _SCHEMA),)

ROLLUPS: dict[str, frozenset[str]] = {
    "query_rollup_product": frozenset(
        {"product_type", "product_category", "environment", "cost_type", "date"}
    ),
    "query_rollup_identity": frozenset({"identity", "cost_type", "date"}),
}
"""Each rollup table and the dimensions (as the API names them) it can answer."""

_ROWS = """chargeback_rows AS r WHERE r.row_id >= :first AND r.row_id < :first + :n
    AND r.tenant_id = :tenant AND r.date = :date"""

_REFRESH = (
    "DELETE FROM query_rollup_product WHERE tenant_id = :tenant AND date = :date",
    "DELETE FROM query_rollup_identity WHERE tenant_id = :tenant AND date = :date",
    "INSERT INTO query_rollup_product SELECT :tenant, :date, r.product_type, "
    "r.product_category, COALESCE(r.env_id, ''), r.cost_type, SUM(r.amount) FROM " + _ROWS + " "
    "GROUP BY r.product_type, r.product_category, COALESCE(r.env_id, ''), r.cost_type",
    "INSERT INTO query_rollup_identity SELECT :tenant, :date, r.identity_id, r.cost_type, "
    "SUM(r.amount) FROM " + _ROWS + " GROUP BY r.identity_id, r.cost_type",
    "INSERT INTO query_rollup_state (tenant_id, date, calc_seq) VALUES (:tenant, :date, :seq) "
    "ON CONFLICT (tenant_id, date) DO UPDATE SET calc_seq = excluded.calc_seq",
)

_migrated: set[str] = set()


async def refresh_rollup(
    path: str | Path, tenant_id: str, day: dt.date, *, busy_timeout_s: float = 30.0
) -> int | None:
    """Rebuild the rollups of one tenant-date from its rows; return the ``calc_seq`` summed.

    ``None``: the date is not calculated (its rollups are left as they are: readers
    ignore them without a current ``calc_seq``).

    Raises:
        StorageError: the database failed (locked past the busy timeout, full, ...).
    """
    path = str(path)
    action = f"refreshing the query rollups of {tenant_id!r} {day}"
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if path not in _migrated:
                now = dt.datetime.now(dt.UTC)
                await ensure_migrations_table(conn)
                await apply_migrations(conn, NAMESPACE, ROLLUP_MIGRATIONS, now=now)
                _migrated.add(path)
            return await _refresh(conn, tenant_id, day)
    except (aiosqlite.Error, OverflowError, ValueError) as exc:
        raise translate_error(exc, action, path) from exc


async def _refresh(conn: aiosqlite.Connection, tenant_id: str, day: dt.date) -> int | None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        found = list(
            await conn.execute_fetchall(
                "SELECT calc_seq, COALESCE(first_row_id, 0), row_count FROM date_state "
                "WHERE tenant_id = ? AND date = ?",
                (tenant_id, day.isoformat()),
            )
        )
        if not found:
            await conn.execute("ROLLBACK")
            return None
        seq, first, count = (int(v) for v in found[0])
        params = {"tenant": tenant_id, "date": day.isoformat(), "first": first, "n": count,
                  "seq": seq}  # fmt: skip
        for statement in _REFRESH:
            await conn.execute(statement, params)
        await conn.execute("COMMIT")
    except BaseException:
        await rollback_quietly(conn)
        raise
    return seq
