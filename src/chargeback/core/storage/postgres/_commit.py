"""The date commit on PostgreSQL: one transaction, the date's old rows deleted, ``COPY`` in.

The inputs are validated and turned into parameter tuples by the same
:func:`chargeback.core.storage._commit.prepare_commit` as SQLite's, so both backends
refuse the same bad input with the same messages. Then one transaction:

1. the fence (:mod:`.leases`): when this backend runs a tenant under a lease, the lease
   row is locked ``FOR SHARE`` and must still be ours at the epoch we claimed, else
   the commit is refused; a replica taking the tenant over waits for this commit;
2. the date's billing lines, chargeback rows and the rows of every plugin table ever
   used are deleted (the index on ``(tenant_id, date, ...)`` finds them);
3. the new rows go in with ``COPY`` (text format);
4. ``date_state`` is upserted with ``calc_seq + 1``.

Any error rolls all of it back and leaves the previous version in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from chargeback.core.storage._commit import CORE_TABLES, PreparedCommit
from chargeback.errors import ChargebackError, StorageError

__all__ = ["Fence", "LeaseLostError", "write_commit"]

_UPSERT_STATE = """
INSERT INTO date_state (tenant_id, date, billing_fingerprint, settings_fingerprint,
    inventory_fingerprint, calc_seq, calculated_at, line_count, row_count, billed_total,
    allocated_total, unallocated_total)
VALUES (%s, %s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tenant_id, date) DO UPDATE SET
    billing_fingerprint = excluded.billing_fingerprint,
    settings_fingerprint = excluded.settings_fingerprint,
    inventory_fingerprint = excluded.inventory_fingerprint,
    calc_seq = date_state.calc_seq + 1,
    calculated_at = excluded.calculated_at,
    line_count = excluded.line_count,
    row_count = excluded.row_count,
    billed_total = excluded.billed_total,
    allocated_total = excluded.allocated_total,
    unallocated_total = excluded.unallocated_total
RETURNING calc_seq
"""

_FENCE = """
SELECT epoch FROM tenant_leases
WHERE tenant_id = %s AND owner_id = %s AND epoch = %s AND expires_at > now()
FOR SHARE
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a tenant's commits must still hold: its owner and the epoch claimed.

    An epoch below 0 means "not held": every commit of the tenant is refused.
    """

    owner_id: str
    epoch: int


class LeaseLostError(ChargebackError):
    """A commit was refused because this replica no longer holds the tenant's lease.

    Not a StorageError: the database is fine (``/readyz`` stays ready); the run fails
    and the replica that holds the lease now does the work.
    """


Conn = psycopg.AsyncConnection[tuple[object, ...]]


async def _check_fence(conn: Conn, tenant_id: str, fence: Fence | None) -> None:
    if fence is None:
        return
    if fence.epoch < 0:
        raise LeaseLostError(
            f"the commit of tenant {tenant_id!r} was refused: this replica "
            f"({fence.owner_id}) does not hold the tenant's lease; nothing was written"
        )
    cur = await conn.execute(_FENCE, (tenant_id, fence.owner_id, fence.epoch))
    if await cur.fetchone() is None:
        raise LeaseLostError(
            f"the commit of tenant {tenant_id!r} was refused: this replica "
            f"({fence.owner_id}) no longer holds the tenant's lease at epoch {fence.epoch} "
            "(it expired or another replica took it over); nothing was written"
        )


async def _plugin_tables(conn: Conn, prepared: PreparedCommit, now: object) -> list[str]:
    """Every plugin table ever used, recording the ones this commit uses first."""
    used = sorted({b.table for b in prepared.batches if b.table not in CORE_TABLES})
    if used:
        await conn.execute(
            "INSERT INTO plugin_tables (table_name, first_used_at) "
            "SELECT unnest(%s::text[]), %s ON CONFLICT DO NOTHING",
            (used, now),
        )
    cur = await conn.execute("SELECT table_name FROM plugin_tables ORDER BY 1")
    return [str(r[0]) for r in await cur.fetchall()]


async def write_commit(conn: Conn, prepared: PreparedCommit, fence: Fence | None) -> int:
    """Run one date commit as one transaction on ``conn``; return the new ``calc_seq``.

    Raises:
        LeaseLostError: ``fence`` is no longer held; nothing was written.
        psycopg.Error: the database failed; nothing was written.
    """
    # ISO text binds as an untyped literal: it compares with the core tables' DATE
    # columns and with the plugin tables' text dates alike.
    key = (prepared.tenant_id, prepared.day.isoformat())
    state = prepared.state
    async with conn.transaction():
        await _check_fence(conn, prepared.tenant_id, fence)
        tables = await _plugin_tables(conn, prepared, state.calculated_at)
        for table in ("billing_lines", "chargeback_rows", *tables):
            await conn.execute(
                sql.SQL("DELETE FROM {} WHERE tenant_id = %s AND date = %s").format(
                    sql.Identifier(table)
                ),
                key,
            )
        async with conn.cursor() as cur:
            for batch in prepared.batches:
                if not batch.rows:
                    continue
                statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(batch.table),
                    sql.SQL(", ").join(map(sql.Identifier, batch.columns)),
                )
                async with cur.copy(statement) as copy:
                    for values in batch.rows:
                        await copy.write_row(values)
        result = await conn.execute(_UPSERT_STATE, state)
        row = await result.fetchone()
    if row is None:  # pragma: no cover - RETURNING always gives the row
        raise StorageError(f"the commit of {key} returned no calc_seq")
    return int(str(row[0]))
