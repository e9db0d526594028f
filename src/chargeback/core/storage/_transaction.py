"""The date-commit transaction itself, on a plain ``sqlite3`` connection (stdlib only).

Both write paths run this function: the backend's own connection thread and the
writer child process (:mod:`~chargeback.core.storage._writer_child`). This module
imports only the standard library so that the child stays small; the child still
loads the packages above it, and ``chargeback/__init__.py`` brings in
``chargeback.core.money`` and ``chargeback.errors`` (with ``decimal``): about 15 MB
of resident memory before SQLite's cache, where the standard library alone takes 12.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence

__all__ = ["CORE_TABLES", "Batch", "insert_statement", "write_transaction"]

CORE_TABLES = frozenset(
    {
        "billing_lines",
        "chargeback_rows",
        "date_state",
        "runs",
        "rerun_requests",
        "emissions",
        "resources",
        "identities",
        "plugin_tables",
        "schema_migrations",
    }
)

Batch = tuple[str, Sequence[str], Sequence[object], Sequence[Sequence[object]]]
"""One table's rows: ``(table, columns, fixed, rows)``; names already checked.

The first ``len(fixed)`` columns hold the same value in every row (the tenant and
the date): they are written into the statement once, and each row gives only the
other columns: a chargeback row's parameters are a slice of the row (55k rows: 7 ms
instead of 12 to build, automatic GC off) and bind two values fewer.
"""

_UPSERT_STATE = """
INSERT INTO date_state (tenant_id, date, billing_fingerprint, settings_fingerprint,
    inventory_fingerprint, calc_seq, calculated_at, line_count, row_count, billed_total,
    allocated_total, unallocated_total, first_row_id)
VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?)
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
    unallocated_total = excluded.unallocated_total,
    first_row_id = excluded.first_row_id
RETURNING calc_seq
"""

_ROW_RANGE = "SELECT first_row_id, row_count FROM date_state WHERE tenant_id = ? AND date = ?"
_DELETE_ROWS = (
    "DELETE FROM chargeback_rows WHERE row_id >= ? AND row_id < ? AND tenant_id = ? AND date = ?"
)
_LAST_ROW_ID = "SELECT COALESCE(MAX(row_id), 0) FROM chargeback_rows"
_ROWS = "chargeback_rows"


def _literal(value: object) -> str | None:
    """``value`` as an SQL literal, or ``None`` if it must be bound instead."""
    if value is None:
        return "NULL"
    if type(value) is int:
        return str(value)
    if type(value) is str and "\x00" not in value:
        return "'" + value.replace("'", "''") + "'"
    return None


def insert_statement(
    table: str, columns: Sequence[str], fixed: Sequence[object], rows: Sequence[Sequence[object]]
) -> tuple[str, Sequence[Sequence[object]]]:
    """The ``INSERT`` statement of one batch and the parameters each row binds.

    The fixed values become literals; one that cannot (text with a NUL character,
    another type) is bound with every row instead, so any value is stored as given.
    """
    literals = [_literal(v) for v in fixed]
    if None in literals:
        literals, rows = [], [(*fixed, *row) for row in rows]
    values = [*map(str, literals), *["?"] * (len(columns) - len(literals))]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)})", rows


def _new_range(
    conn: sqlite3.Connection, key: tuple[str, str], last: int, count: int, stated: object
) -> int | None:
    """The first ``row_id`` of the ``count`` rows just inserted after ``last`` (``None``:
    none), checked to be one contiguous range, as long as ``date_state`` says
    (``stated``)."""
    tenant_id, day_text = key
    if count != stated:
        raise ValueError(
            f"date_state of tenant {tenant_id!r} date {day_text} says "
            f"{stated} chargeback rows, the commit has {count}"
        )
    if not count:
        return None
    if int(conn.execute(_LAST_ROW_ID).fetchone()[0]) != last + count:
        raise sqlite3.IntegrityError(
            f"the {count} chargeback rows of tenant {tenant_id!r} date {day_text} "
            "did not get one contiguous row_id range"
        )
    return last + 1


def write_transaction(
    conn: sqlite3.Connection,
    tenant_id: str,
    day_text: str,
    batches: Sequence[Batch],
    state_params: Sequence[object],
) -> int:
    """Replace one tenant-date as a whole transaction; return the new ``calc_seq``.

    ``BEGIN IMMEDIATE``, the deletes (core tables and every plugin table ever used),
    the inserts, the ``date_state`` upsert and ``COMMIT`` run back to back; any error
    rolls the transaction back and is raised.

    The date's chargeback rows are one contiguous range of ``row_id``: SQLite numbers
    each inserted row one past the table's largest ``row_id``, and this transaction
    holds the write lock, so they get ``last + 1 .. last + n``. The range is checked
    after the insert and recorded in ``date_state.first_row_id``; the old range is
    what the next commit of the date deletes. ``state_params`` are the upsert's
    values without ``first_row_id``.

    Raises:
        sqlite3.IntegrityError: the new rows did not get one contiguous range (the
            table's largest ``row_id`` is at the 64-bit limit); nothing was written.
    """
    key = (tenant_id, day_text)
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {str(r[0]) for r in conn.execute("SELECT table_name FROM plugin_tables")}
        used = {batch[0] for batch in batches if batch[0] not in CORE_TABLES}
        new_tables = sorted(used - tables)
        if new_tables:
            now = str(state_params[5])
            conn.executemany(
                "INSERT INTO plugin_tables (table_name, first_used_at) VALUES (?, ?)",
                [(t, now) for t in new_tables],
            )
        conn.execute("DELETE FROM billing_lines WHERE tenant_id = ? AND date = ?", key)
        old = conn.execute(_ROW_RANGE, key).fetchone()
        if old is not None and old[0] is not None:
            conn.execute(_DELETE_ROWS, (old[0], old[0] + old[1], *key))
        for table in sorted(tables | set(new_tables)):
            conn.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND date = ?", key)
        last = int(conn.execute(_LAST_ROW_ID).fetchone()[0])
        count = 0
        for table, columns, fixed, rows in batches:
            if rows:
                conn.executemany(*insert_statement(table, columns, fixed, rows))
                if table == _ROWS:
                    count += len(rows)
        first_row_id = _new_range(conn, key, last, count, state_params[7])
        state = (*state_params, first_row_id)
        calc_seq = int(conn.execute(_UPSERT_STATE, state).fetchone()[0])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return calc_seq
