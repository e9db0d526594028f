"""SQLite's reads: one grouped query each, and every date's rows found by their row_id range."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from chargeback.core.storage import _queries

D1, D2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)


class TestQueryPlans:
    async def test_reconcile_is_one_grouped_query(self, backend):
        """The reconcile SQL aggregates with GROUP BY (set-based, no per-row Python) and
        finds each date's rows by their row_id range."""
        details = _plan(backend, _queries._RECONCILE, {"tenant": "t", "start": "a", "end": "b"})
        assert "GROUP BY" in details
        assert _BY_RANGE in details
        assert "SCAN r" not in details


_BY_RANGE = "SEARCH r USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"


def _plan(backend, sql: str, params: tuple[str, ...] | dict[str, str]) -> str:
    conn = sqlite3.connect(backend.path)
    try:
        return " | ".join(str(p[3]) for p in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        conn.close()


class TestRowRanges:
    """Every read of chargeback rows goes through the dates' row_id ranges (migration 2)."""

    @pytest.mark.parametrize("tenant", ["t", None])
    async def test_cost_totals_look_rows_up_by_range(self, backend, tenant):
        """One tenant or all: each date's rows by range, never an automatic index."""
        sql = _queries._COST_TOTALS.format(
            tenant_filter="" if tenant is None else "s.tenant_id = ? AND",
        )
        params = ("a", "b") if tenant is None else (tenant, "a", "b")
        details = _plan(backend, sql, params)
        assert _BY_RANGE in details
        assert "AUTOMATIC" not in details

    async def test_read_rows_looks_rows_up_by_range(self, backend):
        """A date's rows: one date_state lookup and one row_id range, no scan."""
        details = _plan(backend, _queries._READ_ROWS, ("t", "2024-01-01"))
        assert _BY_RANGE in details
        assert "SCAN" not in details

    async def test_a_row_inside_a_range_but_of_another_date_is_not_read(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Reads compare the tenant and date too: a range is a lookup, not a trust."""
        rows = rows_factory("t1", line_factory("a", 10), ["sa-1", "sa-2"], [1, 1])
        await commit_date(backend, "t1", D1, [], rows)
        conn = sqlite3.connect(backend.path)
        with conn:
            first = conn.execute("SELECT MIN(row_id) FROM chargeback_rows").fetchone()[0]
            conn.execute(
                "UPDATE chargeback_rows SET date = '1999-01-01' WHERE row_id = ?", (first,)
            )
        conn.close()
        assert [r.identity_id for r in await backend.read_rows("t1", D1)] == ["sa-2"]
        [row] = await backend.reconcile("t1", D1, D2)
        assert (row.billed, row.allocated) == (0, 5)
