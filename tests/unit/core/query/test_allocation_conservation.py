"""Property: every allocation answer conserves the stored amounts exactly (DESIGN §5, §15).

Read from the rows or from the daily rollups (current for some dates, stale for others),
the answer is the same.

Random chargeback rows (credits too) are committed to a real SQLite file through the
backend; then random queries (dimensions, steps, windows, filters) go through the SQLite
query source and :func:`build_sets`, and each set must equal a brute-force sum over the
rows, entry by entry, to the last minor unit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow
from chargeback.core.money import split
from chargeback.core.query import (
    DIMENSIONS,
    AllocationSpec,
    DayTotal,
    Filter,
    Step,
    Window,
    build_sets,
)
from chargeback.core.query.aggregate import GroupRow
from chargeback.core.storage.query_rollup import refresh_rollup
from chargeback.core.storage.query_sqlite import SQLiteQuerySource
from chargeback.core.storage.sqlite import SQLiteBackend

BASE = dt.date(2026, 1, 26)
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
IDENTITIES = ("sa-1", "sa-2", "u-3", UNALLOCATED)
FILTER_VALUES = ("sa-1", UNALLOCATED, "lkc-1", "", "usage", "KAFKA_BASE", "l0", "2026-01-27")
_files = itertools.count()

line_st = st.fixed_dictionaries(
    {
        "product_type": st.sampled_from(("KAFKA_BASE", "KAFKA_NETWORK_READ", "CONNECT_CAPACITY")),
        "resource_id": st.sampled_from(("lkc-1", "lkc-2", "lcc-9", None)),
        "env_id": st.sampled_from(("env-a", "env-b", None)),
        "amount": st.integers(-(10**12), 10**12),
        "parts": st.lists(
            st.tuples(
                st.sampled_from(IDENTITIES),
                st.integers(0, 1000),
                st.sampled_from(("usage", "shared", "unallocated", "custom")),
                st.sampled_from(("rule_a", "rule_b")),
            ),
            min_size=1,
            max_size=4,
        ),
    }
)
days_st = st.dictionaries(st.integers(0, 40), st.lists(line_st, min_size=1, max_size=5), max_size=6)
_offsets = st.sets(st.integers(0, 40), max_size=8)
rollups_st = st.tuples(_offsets, _offsets, _offsets)
"""Dates rolled up, then recalculated (their rollups go stale), then rolled up again."""
query_st = st.fixed_dictionaries(
    {
        "dims": st.permutations(sorted(DIMENSIONS)).map(tuple).flatmap(
            lambda p: st.integers(1, 3).map(lambda n: p[:n])
        ),
        "step": st.sampled_from((None, Step.DAY, Step.WEEK, Step.MONTH)),
        "start": st.integers(-3, 40),
        "length": st.integers(1, 45),
        "filters": st.lists(
            st.tuples(
                st.sampled_from(sorted(DIMENSIONS)),
                st.lists(
                    st.sampled_from(FILTER_VALUES),
                    min_size=1, max_size=3,
                ),
                st.booleans(),
            ),
            max_size=2,
        ),
    }
)  # fmt: skip


def _commit_plan(
    days: dict[int, list[dict[str, object]]],
) -> list[tuple[dt.date, list[BillingLineItem], list[ChargebackRow]]]:
    plan = []
    for offset, specs in sorted(days.items()):
        day = BASE + dt.timedelta(days=offset)
        lines, rows = [], []
        for n, spec in enumerate(specs):
            amount = int(spec["amount"])  # type: ignore[call-overload]
            parts = spec["parts"]
            assert isinstance(parts, list)
            line = BillingLineItem(f"l{n}", day, str(spec["product_type"]), "KAFKA", amount,
                                   spec["resource_id"], spec["env_id"])  # type: ignore[arg-type]  # fmt: skip
            lines.append(line)
            for (ident, _, cost_type, rule), part in zip(
                parts, split(amount, [w for _, w, _, _ in parts]), strict=True
            ):
                rows.append(ChargebackRow("t", day, line.line_id, ident, line.product_type,
                                          "KAFKA", line.resource_id, line.env_id, cost_type,
                                          rule, part, None))  # fmt: skip
        plan.append((day, lines, rows))
    return plan


def _value(row: ChargebackRow, dimension: str) -> str:
    return str(getattr(row, DIMENSIONS[dimension]) or "")


def _collapsed(rows: list[ChargebackRow]) -> list[ChargebackRow]:
    """A recalculation of a date: each line wholly to sa-2 as usage (same totals)."""
    by_line: dict[str, ChargebackRow] = {}
    for r in rows:
        first = by_line.get(r.line_id)
        amount = r.amount + (first.amount if first else 0)
        by_line[r.line_id] = r._replace(identity_id="sa-2", cost_type="usage", amount=amount)
    return list(by_line.values())


async def _scenario(
    path: Path,
    days: dict[int, list[dict[str, object]]],
    query: dict[str, object],
    rollups: tuple[set[int], set[int], set[int]],
) -> None:
    plan = _commit_plan(days)
    rolled, recalculated, rolled_again = rollups
    async with SQLiteBackend(path, writer_process_min_rows=None) as storage:

        async def commit(
            day: dt.date, lines: list[BillingLineItem], rows: list[ChargebackRow]
        ) -> None:
            await storage.commit_date("t", day, lines=lines, rows=rows, plugin_rows=[],
                                      billing_fingerprint="b", settings_fingerprint="s",
                                      inventory_fingerprint="i", calculated_at=NOW)  # fmt: skip

        final: dict[dt.date, list[ChargebackRow]] = {}
        for day, lines, rows in plan:
            await commit(day, lines, rows)
            final[day] = rows
        offsets = {(day - BASE).days: (day, lines) for day, lines, _ in plan}
        for n in sorted(rolled & set(offsets)):  # rollups of the first calculation
            await refresh_rollup(path, "t", offsets[n][0])
        for n in sorted(recalculated & set(offsets)):  # stale rollups: the rows moved on
            day, lines = offsets[n]
            final[day] = _collapsed(final[day])
            await commit(day, lines, final[day])
        for n in sorted(rolled_again & set(offsets)):  # current again
            await refresh_rollup(path, "t", offsets[n][0])
        all_rows = [r for rows in final.values() for r in rows]
        start = BASE + dt.timedelta(days=int(query["start"]))  # type: ignore[call-overload]
        window = Window(start, start + dt.timedelta(days=int(query["length"])))  # type: ignore[call-overload]
        dims: tuple[str, ...] = query["dims"]  # type: ignore[assignment]
        step: Step | None = query["step"]  # type: ignore[assignment]
        filters = tuple(Filter(d, tuple(v), neg) for d, v, neg in query["filters"])  # type: ignore[attr-defined]
        groups: list[GroupRow] = await SQLiteQuerySource(path).allocation_groups(
            "t", window, step, dims, filters
        )
        states = await storage.get_date_states("t", window.start, window.end)
    totals = [DayTotal(s.day, s.billed_total, s.allocated_total, s.unallocated_total)
              for s in states.values()]  # fmt: skip
    sets = build_sets(window, step, groups, totals, AllocationSpec(dims, filters))
    buckets = [window] if step is None else step.buckets(window)
    assert [s.window for s in sets] == buckets
    for s in sets:
        inside = [r for r in all_rows if s.window.start <= r.date < s.window.end]
        kept = [r for r in inside if all(f.matches(_value(r, f.dimension)) for f in filters)]
        want: dict[tuple[str, ...], int] = defaultdict(int)
        for r in kept:
            want[tuple(_value(r, d) for d in dims)] += r.amount
        got = {e.key: e.amounts.cost for e in s.entries}
        assert got == dict(want)
        assert s.total_entries == len(want)
        assert s.selected.cost == sum(r.amount for r in kept)
        for e in s.entries:
            a = e.amounts
            assert a.cost == a.usage + a.shared + a.unallocated + a.other
        assert s.allocated == s.billed == sum(r.amount for r in inside)
        if not filters:
            assert sum(got.values()) == s.allocated


class TestAllocationConservation:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(days=days_st, query=query_st, rollups=rollups_st)
    def test_sets_equal_the_rows_exactly(
        self, tmp_path_factory: object, days: dict[int, list[dict[str, object]]],
        query: dict[str, object], rollups: tuple[set[int], set[int], set[int]],
    ) -> None:  # fmt: skip
        """Any query's sets equal brute-force sums of the stored rows, to the minor unit,
        whichever dates have current, stale or no rollups."""
        root = tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
        path = root / f"conservation-{next(_files)}.db"
        asyncio.run(_scenario(path, days, query, rollups))
