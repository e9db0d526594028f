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
from collections.abc import Iterator, Sequence
from typing import NamedTuple

__all__ = [
    "CORE_TABLES",
    "USAGE_DELETE",
    "USAGE_INSERT",
    "Batch",
    "StateRecord",
    "insert_statement",
    "write_transaction",
    "write_usage_transaction",
]

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
        "usage_ledger",
        "period_state",
        "restatements",
    }
)


class Batch(NamedTuple):
    """One table's rows of a date commit, for ``executemany``; names already checked.

    Attributes:
        table: the table.
        columns: the columns every row gives, in order (the tenant and the date too).
        rows: one tuple of values per row.
    """

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]


class StateRecord(NamedTuple):
    """A date's ``date_state`` values as a commit writes them (not ``calc_seq`` and
    ``first_row_id``: the transaction works those out)."""

    tenant_id: str
    date: str
    billing_fingerprint: str
    settings_fingerprint: str
    inventory_fingerprint: str
    calculated_at: str
    line_count: int
    row_count: int
    billed_total: int
    allocated_total: int
    unallocated_total: int


def _upsert_state() -> str:
    """The ``date_state`` upsert, its columns those of :class:`StateRecord`."""
    columns = [*StateRecord._fields, "calc_seq", "first_row_id"]
    values = ["?"] * len(StateRecord._fields) + ["1", "?"]
    updates = [f"{c} = excluded.{c}" for c in columns if c not in ("tenant_id", "date")]
    updates[updates.index("calc_seq = excluded.calc_seq")] = "calc_seq = date_state.calc_seq + 1"
    return (
        f"INSERT INTO date_state ({', '.join(columns)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT (tenant_id, date) DO UPDATE SET {', '.join(updates)} RETURNING calc_seq"
    )


_UPSERT_STATE = _upsert_state()

_ROW_RANGE = "SELECT first_row_id, row_count FROM date_state WHERE tenant_id = ? AND date = ?"
_DELETE_ROWS = (
    "DELETE FROM chargeback_rows WHERE row_id >= ? AND row_id < ? AND tenant_id = ? AND date = ?"
)
_LAST_ROW_ID = "SELECT COALESCE(MAX(row_id), 0) FROM chargeback_rows"
_ROWS = "chargeback_rows"


def insert_statement(batch: Batch) -> str:
    """The ``INSERT`` statement of one batch (every value bound)."""
    marks = ", ".join("?" * len(batch.columns))
    return f"INSERT INTO {batch.table} ({', '.join(batch.columns)}) VALUES ({marks})"


def _scalar(conn: sqlite3.Connection, sql: str, params: Sequence[object] = ()) -> int:
    """The one integer a statement returns."""
    (value,) = conn.execute(sql, params).fetchone()
    return int(value)


def _plugin_tables(conn: sqlite3.Connection, batches: Sequence[Batch], now: str) -> list[str]:
    """Every plugin table ever used, recording those this commit uses first."""
    known = {str(name) for (name,) in conn.execute("SELECT table_name FROM plugin_tables")}
    used = {b.table for b in batches if b.table not in CORE_TABLES}
    new_tables = sorted(used - known)
    if new_tables:
        conn.executemany(
            "INSERT INTO plugin_tables (table_name, first_used_at) VALUES (?, ?)",
            [(t, now) for t in new_tables],
        )
    return sorted(known | used)


def _delete_date(conn: sqlite3.Connection, key: tuple[str, str], tables: list[str]) -> None:
    """Delete the date's lines, its chargeback rows (by their range) and its plugin rows."""
    conn.execute("DELETE FROM billing_lines WHERE tenant_id = ? AND date = ?", key)
    old = conn.execute(_ROW_RANGE, key).fetchone()
    if old is not None:
        first_row_id, row_count = old
        if first_row_id is not None:
            conn.execute(_DELETE_ROWS, (first_row_id, first_row_id + row_count, *key))
    for table in tables:
        conn.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND date = ?", key)


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
    if _scalar(conn, _LAST_ROW_ID) != last + count:
        raise sqlite3.IntegrityError(
            f"the {count} chargeback rows of tenant {tenant_id!r} date {day_text} "
            "did not get one contiguous row_id range"
        )
    return last + 1


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """One ``BEGIN IMMEDIATE`` transaction: committed at the end, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def write_transaction(
    conn: sqlite3.Connection, batches: Sequence[Batch], state: StateRecord
) -> int:
    """Replace one tenant-date as a whole transaction; return the new ``calc_seq``.

    ``BEGIN IMMEDIATE``, the deletes (core tables and every plugin table ever used),
    the inserts, the ``date_state`` upsert and ``COMMIT`` run back to back; any error
    rolls the transaction back and is raised.

    The date's chargeback rows are one contiguous range of ``row_id``: SQLite numbers
    each inserted row one past the table's largest ``row_id``, and this transaction
    holds the write lock, so they get ``last + 1 .. last + n``. The range is checked
    after the insert and recorded in ``date_state.first_row_id``; the old range is
    what the next commit of the date deletes. ``state`` names the tenant and the date.

    Raises:
        sqlite3.IntegrityError: the new rows did not get one contiguous range (the
            table's largest ``row_id`` is at the 64-bit limit); nothing was written.
    """
    key = (state.tenant_id, state.date)
    with _immediate(conn):
        tables = _plugin_tables(conn, batches, state.calculated_at)
        _delete_date(conn, key, tables)
        last = _scalar(conn, _LAST_ROW_ID)
        count = 0
        for batch in batches:
            if batch.rows:
                conn.executemany(insert_statement(batch), batch.rows)
                if batch.table == _ROWS:
                    count += len(batch.rows)
        first_row_id = _new_range(conn, key, last, count, state.row_count)
        return _scalar(conn, _UPSERT_STATE, (*state, first_row_id))


USAGE_DELETE = (
    "DELETE FROM usage_ledger WHERE tenant_id = ? AND date = ? AND query = ? AND resource_id = ?"
)
"""Deletes one stored cell of the usage ledger: ``(tenant, date, query, resource)``."""
USAGE_INSERT = (
    "INSERT INTO usage_ledger (tenant_id, date, query, resource_id, principal_id, value, "
    "source, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
"""Inserts one row of the usage ledger (see ``core.storage._ledger_rows.rows_of``)."""


def write_usage_transaction(
    conn: sqlite3.Connection,
    cells: Sequence[tuple[object, ...]],
    rows: Sequence[tuple[object, ...]],
) -> int:
    """Replace usage-ledger cells as one transaction; return the rows inserted.

    ``cells`` are the :data:`USAGE_DELETE` parameters of every cell written (a stored
    version of a cell is replaced whole), ``rows`` the :data:`USAGE_INSERT` parameters.
    Any error rolls the transaction back and is raised.
    """
    with _immediate(conn):
        conn.executemany(USAGE_DELETE, cells)
        conn.executemany(USAGE_INSERT, rows)
    return len(rows)
