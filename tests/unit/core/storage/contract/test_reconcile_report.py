"""build_report / render_report: the reconciliation a user runs against the stored bill."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.models import REFUSED, BillingLineItem, ChargebackRow
from chargeback.core.money import split
from chargeback.core.reconcile import build_report, render_report
from chargeback.core.storage.factory import open_backend

D1, D2, D3, D4 = (dt.date(2024, 5, d) for d in (1, 2, 3, 4))
NOW = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)


class TestBuildReport:
    async def test_clean_report(self, backend, line_factory, rows_factory, commit_date):
        """Exact splits give an OK report with per-date totals; uncalculated days are listed."""
        for day in (D1, D3):
            lines = [line_factory("a", 1_234_567_891, day=day), line_factory("b", -5, day=day)]
            rows = [r for ln in lines for r in rows_factory("t1", ln, ["x", "y", "z"], [1, 1, 1])]
            await commit_date(backend, "t1", day, lines, rows)
        report = await build_report(backend, "t1", D1, D4)
        assert report.ok
        assert [d.day for d in report.dates] == [D1, D3]
        assert report.dates[0].billed == report.dates[0].allocated == 1_234_567_886
        assert report.missing_dates == (D2,)
        assert report.billed_total == report.allocated_total == 2 * 1_234_567_886
        text = render_report(report)
        assert text.splitlines()[-1] == "OK: allocated equals billed for 2 dates"
        assert "1.234567886" in text
        assert "2024-05-02" in text  # listed as not calculated

    async def test_mismatch_report(self, backend, line_factory, rows_factory, commit_date):
        """Missing rows make the report fail and the last line names the mismatch."""
        line = line_factory("a", 1000)
        await commit_date(backend, "t1", D1, [line], rows_factory("t1", line, ["x"], [1])[:0])
        good = line_factory("b", 10, day=D2)
        await commit_date(backend, "t1", D2, [good], rows_factory("t1", good, ["x"], [1]))
        report = await build_report(backend, "t1", D1, D3)
        assert not report.ok
        assert [(m.day, m.difference) for m in report.mismatches] == [(D1, -1000)]
        last = render_report(report).splitlines()[-1]
        assert last.startswith("MISMATCH: 1 of 2 date/product rows on 1 of 2 dates differ")
        assert last.endswith("allocated - billed = -0.000001000")

    async def test_table_columns_align(self, backend, line_factory, rows_factory, commit_date):
        """Every table line has the same width-aligned number columns."""
        lines = [
            line_factory("a", 5, product_type="SUPPORT"),
            line_factory("b", 987_654_321_000, product_type="KAFKA_NUM_CKU"),
        ]
        rows = [r for ln in lines for r in rows_factory("t1", ln, ["x"], [1])]
        await commit_date(backend, "t1", D1, lines, rows)
        text = render_report(await build_report(backend, "t1", D1, D2))
        table = [ln for ln in text.splitlines()[1:] if not ln.startswith(("OK", "MISMATCH"))]
        ends = {len(ln) for ln in table}
        assert len(ends) == 1, text

    async def test_refused_lines_fail_the_report_unless_accepted(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """A refused line (amount 0, reported amount kept) has its own column and fails the
        report, though billed equals allocated; --accept-refused passes it, still listed."""
        good = line_factory("a", 700)
        refused = line_factory("huge", 0)._replace(
            error=REFUSED + "amount 1e15 is out of range",
            attributes={"reported_amount": "1e15"},
        )
        rows = [*rows_factory("t1", good, ["x"], [1]), *rows_factory("t1", refused, ["x"], [1])]
        await commit_date(backend, "t1", D1, [good, refused], rows)
        report = await build_report(backend, "t1", D1, D2)
        assert [(r.lines, r.refused, r.difference) for r in report.rows] == [(2, 1, 0)]
        assert (report.refused_lines, report.ok) == (1, False)
        text = render_report(report).splitlines()
        assert text[1].split()[-1] == "refused"
        assert text[-2].startswith("REFUSED: 1 billing lines reported an amount")
        assert text[-1] == "OK: allocated equals billed for 1 dates"
        accepted = await build_report(backend, "t1", D1, D2, accept_refused=True)
        assert accepted.ok
        assert "accepted (--accept-refused)" in render_report(accepted)

    async def test_empty_range(self, backend):
        """A range with nothing stored is OK with zero dates and lists the missing days."""
        report = await build_report(backend, "t1", D1, D3)
        assert report.ok
        assert report.missing_dates == (D1, D2)
        assert render_report(report).endswith("OK: allocated equals billed for 0 dates")


amounts = st.integers(min_value=-(10**15), max_value=10**15)
weights = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=6)
day_lines = st.lists(st.tuples(amounts, weights), min_size=0, max_size=8)
_tenants = itertools.count()


class TestReconcileProperty:
    @settings(max_examples=40, deadline=None)
    @given(days=st.lists(day_lines, min_size=1, max_size=3))
    def test_split_rows_always_reconcile(self, tmp_path_factory, storage_target, days):
        """For any lines split with money.split, reconcile shows zero difference everywhere."""
        directory = tmp_path_factory.getbasetemp() / f"reconcile_property_{storage_target.name}"
        directory.mkdir(exist_ok=True)
        settings_ = storage_target.make(directory)
        tenant = f"t{next(_tenants)}"

        async def run():
            async with open_backend(settings_) as store:
                for offset, specs in enumerate(days):
                    day = D1 + dt.timedelta(days=offset)
                    lines, rows = [], []
                    for i, (amount, ws) in enumerate(specs):
                        line = BillingLineItem(f"l{i}", day, f"P{i % 3}", "C", amount)
                        lines.append(line)
                        for j, part in enumerate(split(amount, ws)):
                            rows.append(
                                ChargebackRow(
                                    tenant, day, line.line_id, f"id-{j}", line.product_type,
                                    "C", None, None, "usage", "prop", part, None,
                                )
                            )  # fmt: skip
                    await store.commit_date(
                        tenant, day, lines=lines, rows=rows, plugin_rows=[],
                        billing_fingerprint="b", settings_fingerprint="s",
                        inventory_fingerprint="i", calculated_at=NOW,
                    )  # fmt: skip
                recon = await store.reconcile(tenant, D1, D1 + dt.timedelta(days=len(days)))
                report = await build_report(store, tenant, D1, D1 + dt.timedelta(days=len(days)))
                return recon, report

        recon, report = asyncio.run(run())
        assert all(r.difference == 0 for r in recon)
        assert report.ok
        assert report.missing_dates == ()
        assert sum(r.billed for r in recon) == sum(a for specs in days for a, _ in specs)
