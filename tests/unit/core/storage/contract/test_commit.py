"""commit_date: one transaction that replaces a tenant-date's lines, rows and plugin rows."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest

from chargeback.core.models import UNALLOCATED, BillingLineItem
from chargeback.core.plugin.protocols import Migration, PluginRows
from chargeback.errors import StorageError

DAY = dt.date(2024, 5, 1)
OTHER_DAY = dt.date(2024, 5, 2)
NOW = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)
IDS = ("sa-1", "sa-2", "sa-3")

EXTRA_TABLE = Migration(
    1,
    "extra billing",
    "CREATE TABLE extra_billing (tenant_id TEXT NOT NULL, date TEXT NOT NULL, "
    "line_id TEXT NOT NULL, cost INTEGER NOT NULL CHECK (cost >= 0), "
    "PRIMARY KEY (tenant_id, date, line_id));",
)


class ExtraModule:
    """A plugin storage module with one table keyed by tenant, date and line."""

    @property
    def namespace(self) -> str:
        return "extra"

    def migrations(self) -> Sequence[Migration]:
        return (EXTRA_TABLE,)

    def billing_rows(
        self, tenant_id: str, day: dt.date, lines: Sequence[BillingLineItem]
    ) -> Sequence[PluginRows]:
        rows = [(line.line_id, line.amount) for line in lines]
        return (PluginRows("extra_billing", ("line_id", "cost"), rows),)


def version(line_factory, rows_factory, tenant: str, day: dt.date, amounts: Sequence[int]):
    """Build lines and exactly split rows for one date."""
    lines = [line_factory(f"line-{i}", amount, day=day) for i, amount in enumerate(amounts)]
    rows = [r for line in lines for r in rows_factory(tenant, line, IDS, [5, 3, 2])]
    return lines, rows


def count(peek, sql: str, *params) -> int:
    """The one number ``sql`` selects from the test's database."""
    [(value,)] = peek(sql, *params)
    return int(value)


class TestCommitReplacesDate:
    async def test_first_commit_stores_rows_and_state(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """A first commit stores every row, in order, and state with calc_seq 1 and totals."""
        lines, rows = version(line_factory, rows_factory, "t1", DAY, [1000, -333, 7])
        state = await commit_date(backend, "t1", DAY, lines, rows)
        assert state.calc_seq == 1
        assert (state.line_count, state.row_count) == (3, 9)
        assert state.billed_total == state.allocated_total == 674
        assert state.unallocated_total == 0
        assert await backend.read_rows("t1", DAY) == rows
        stored = await backend.get_date_states("t1", DAY, OTHER_DAY)
        assert stored == {DAY: state}

    async def test_recommit_replaces_without_duplicates(
        self, backend, line_factory, rows_factory, commit_date, peek
    ):
        """Committing a date again replaces its rows and increments calc_seq."""
        lines1, rows1 = version(line_factory, rows_factory, "t1", DAY, [1000, 2000])
        lines2, rows2 = version(line_factory, rows_factory, "t1", DAY, [50])
        await commit_date(backend, "t1", DAY, lines1, rows1)
        await commit_date(backend, "t1", DAY, lines1, rows1)
        state = await commit_date(backend, "t1", DAY, lines2, rows2, billing_fingerprint="b2")
        assert state.calc_seq == 3
        assert state.billing_fingerprint == "b2"
        assert await backend.read_rows("t1", DAY) == rows2
        assert count(peek, "SELECT COUNT(*) FROM billing_lines") == 1

    async def test_other_dates_and_tenants_are_untouched(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Recommitting one tenant-date leaves other dates and other tenants alone."""
        other_day = version(line_factory, rows_factory, "t1", OTHER_DAY, [10, 20])
        other_tenant = version(line_factory, rows_factory, "t2", DAY, [30])
        await commit_date(backend, "t1", OTHER_DAY, *other_day)
        await commit_date(backend, "t2", DAY, *other_tenant)
        for amounts in ([1, 2, 3], [4]):
            await commit_date(
                backend, "t1", DAY, *version(line_factory, rows_factory, "t1", DAY, amounts)
            )
        assert await backend.read_rows("t1", OTHER_DAY) == other_day[1]
        assert await backend.read_rows("t2", DAY) == other_tenant[1]
        states = await backend.get_date_states("t1", DAY, OTHER_DAY + dt.timedelta(days=1))
        assert {d: s.calc_seq for d, s in states.items()} == {DAY: 2, OTHER_DAY: 1}

    @pytest.mark.parametrize("tenant", ["o'brien", "x'); DROP TABLE runs; --", "nul\x00in"])
    async def test_any_tenant_text_is_stored_as_given(  # noqa: PLR0917  (pytest fixtures)
        self, backend, line_factory, rows_factory, commit_date, tenant, peek, storage_target
    ):
        """The tenant is written into the insert statements once: quotes are escaped, and
        text SQL cannot hold (a NUL character) is bound with every row instead. A backend
        whose text cannot hold NUL at all refuses it whole, saying so."""
        await backend.register_modules([ExtraModule()])
        lines, rows = version(line_factory, rows_factory, tenant, DAY, [10, 20])
        block = ExtraModule().billing_rows(tenant, DAY, lines)
        if "\x00" in tenant and not storage_target.holds_nul:
            with pytest.raises(StorageError, match="cannot hold a NUL character"):
                await commit_date(backend, tenant, DAY, lines, rows, plugin_rows=block)
            assert count(peek, "SELECT COUNT(*) FROM billing_lines") == 0
            return
        await commit_date(backend, tenant, DAY, lines, rows, plugin_rows=block)
        assert await backend.read_rows(tenant, DAY) == rows
        for table, n in (("billing_lines", 2), ("chargeback_rows", 6), ("extra_billing", 2)):
            assert count(peek, f"SELECT COUNT(*) FROM {table} WHERE tenant_id = ?", tenant) == n
        assert count(peek, "SELECT COUNT(*) FROM runs") == 0  # the table is still there

    async def test_unallocated_total_counts_unallocated_rows(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """The state's unallocated total is the part charged to UNALLOCATED."""
        line = line_factory("line-u", 1001)
        rows = rows_factory("t1", line, ["sa-1", UNALLOCATED], [1, 1])
        state = await commit_date(backend, "t1", DAY, [line], rows)
        assert state.unallocated_total == 500
        assert state.allocated_total == 1001

    async def test_empty_date_is_recorded(self, backend, commit_date):
        """A date without lines is still recorded as calculated (nothing to allocate)."""
        state = await commit_date(backend, "t1", DAY, [], [])
        assert (state.calc_seq, state.row_count, state.billed_total) == (1, 0, 0)
        assert await backend.latest_calculated_date("t1") == DAY


class TestCommitValidation:
    async def test_rows_of_another_date_are_rejected(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Rows dated differently from the commit raise before anything is written."""
        lines, rows = version(line_factory, rows_factory, "t1", OTHER_DAY, [10])
        with pytest.raises(ValueError, match="commit each tenant-date"):
            await commit_date(backend, "t1", DAY, [], rows)
        with pytest.raises(ValueError, match="commit each date"):
            await commit_date(backend, "t1", DAY, lines, [])
        assert await backend.get_date_states("t1", DAY, OTHER_DAY) == {}

    async def test_rows_of_another_tenant_among_good_ones_are_rejected(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """One stray row of another tenant, even among the commit's own, is named and refused."""
        lines, rows = version(line_factory, rows_factory, "t1", DAY, [10, 20])
        _, stray = version(line_factory, rows_factory, "t2", DAY, [5])
        with pytest.raises(
            ValueError, match=r"\[\('t2', '2024-05-01'\)\].*commit each tenant-date"
        ):
            await commit_date(backend, "t1", DAY, lines, [*rows, *stray])
        assert await backend.get_date_states("t1", DAY, OTHER_DAY) == {}

    async def test_duplicate_line_ids_fail_whole(self, backend, line_factory, commit_date):
        """Two lines with one id violate the key; the commit fails with a StorageError."""
        line = line_factory("same", 1)
        with pytest.raises(StorageError, match="constraint"):
            await commit_date(backend, "t1", DAY, [line, line], [])
        assert await backend.latest_calculated_date("t1") is None

    async def test_amount_beyond_64_bits_is_a_storage_error(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """An amount that does not fit SQLite's integer is reported, not truncated."""
        line = line_factory("huge", 2**63)
        with pytest.raises(StorageError, match="64-bit"):
            await commit_date(backend, "t1", DAY, [line], [])


class TestPluginRows:
    async def test_plugin_rows_are_replaced_with_the_date(
        self, backend, line_factory, rows_factory, commit_date, peek
    ):
        """Plugin rows commit with the date and are replaced, not duplicated, on recommit."""
        module = ExtraModule()
        await backend.register_modules([module])
        lines, rows = version(line_factory, rows_factory, "t1", DAY, [10, 20])
        plugin_rows = module.billing_rows("t1", DAY, lines)
        await commit_date(backend, "t1", DAY, lines, rows, plugin_rows=plugin_rows)
        await commit_date(backend, "t1", DAY, lines, rows, plugin_rows=plugin_rows)
        assert count(peek, "SELECT COUNT(*) FROM extra_billing WHERE date = ?", "2024-05-01") == 2
        await commit_date(backend, "t1", DAY, lines[:1], rows[:3], plugin_rows=())
        assert count(peek, "SELECT COUNT(*) FROM extra_billing") == 0

    async def test_failed_plugin_insert_keeps_the_old_version(
        self, backend, line_factory, rows_factory, commit_date, peek
    ):
        """A constraint failure in a plugin table rolls back the whole date."""
        module = ExtraModule()
        await backend.register_modules([module])
        old_lines, old_rows = version(line_factory, rows_factory, "t1", DAY, [10, 20])
        old = await commit_date(
            backend, "t1", DAY, old_lines, old_rows,
            plugin_rows=module.billing_rows("t1", DAY, old_lines),
        )  # fmt: skip
        new_lines, new_rows = version(line_factory, rows_factory, "t1", DAY, [-5, 40, 60])
        with pytest.raises(StorageError, match="constraint"):
            await commit_date(
                backend, "t1", DAY, new_lines, new_rows,
                plugin_rows=module.billing_rows("t1", DAY, new_lines),
                billing_fingerprint="new",
            )  # fmt: skip
        assert await backend.read_rows("t1", DAY) == old_rows
        assert await backend.get_date_states("t1", DAY, OTHER_DAY) == {DAY: old}
        assert count(peek, "SELECT SUM(cost) FROM extra_billing") == 30
        # the connection is usable afterwards
        state = await commit_date(backend, "t1", DAY, new_lines[1:], new_rows[3:])
        assert state.calc_seq == 2

    async def test_plugin_columns_may_include_tenant_and_date(
        self, backend, line_factory, commit_date, peek
    ):
        """Plugin rows that carry tenant_id and date (as a date or text) are accepted."""
        await backend.register_modules([ExtraModule()])
        block = PluginRows(
            "extra_billing",
            ("tenant_id", "date", "line_id", "cost"),
            [("t1", DAY, "a", 1), ("t1", "2024-05-01", "b", 2)],
        )
        await commit_date(backend, "t1", DAY, [], [], plugin_rows=[block])
        assert count(peek, "SELECT SUM(cost) FROM extra_billing") == 3
        wrong = PluginRows("extra_billing", ("tenant_id", "line_id", "cost"), [("t2", "c", 1)])
        with pytest.raises(ValueError, match="is for tenant 't2'"):
            await commit_date(backend, "t1", DAY, [], [], plugin_rows=[wrong])

    @pytest.mark.parametrize(
        ("table", "columns", "message"),
        [
            ("billing_lines", ("line_id",), "core table"),
            ("extra; DROP TABLE runs", ("line_id",), "not a plain SQL identifier"),
            ("extra_billing", ("line_id, cost",), "not a plain SQL identifier"),
        ],
    )
    async def test_unsafe_plugin_tables_are_rejected(
        self, backend, commit_date, table, columns, message
    ):
        """Plugin rows may not target core tables or use non-identifier names."""
        block = PluginRows(table, columns, [("x",)])
        with pytest.raises((ValueError, StorageError), match=message):
            await commit_date(backend, "t1", DAY, [], [], plugin_rows=[block])

    async def test_missing_plugin_table_is_a_storage_error(self, backend, commit_date):
        """Rows for a table no migration created fail the commit with a StorageError."""
        block = PluginRows("nowhere", ("line_id",), [("x",)])
        with pytest.raises(StorageError, match="no such table"):
            await commit_date(backend, "t1", DAY, [], [], plugin_rows=[block])
        assert await backend.latest_calculated_date("t1") is None


class TestConcurrentCommits:
    async def test_concurrent_tenants_share_one_backend(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """Commits of many tenants at once are serialised and all land whole."""
        versions = {
            f"t{i}": version(line_factory, rows_factory, f"t{i}", DAY, range(1, 50 + i))
            for i in range(8)
        }
        states = await asyncio.gather(
            *(commit_date(backend, t, DAY, *v) for t, v in versions.items()),
            *(backend.read_rows(t, DAY) for t in versions),
        )
        assert all(s.calc_seq == 1 for s in states[:8])
        for tenant, (_lines, rows) in versions.items():
            assert await backend.read_rows(tenant, DAY) == rows
        assert await backend.tenants() == sorted(versions)
