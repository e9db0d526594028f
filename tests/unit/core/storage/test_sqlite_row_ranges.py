"""Each tenant-date's chargeback rows are one contiguous row_id range (core migration 2).

The range is what reads and the next commit of the date use, so it must hold exactly
the date's rows after any sequence of commits, on both write paths, and a database
written by the first schema must come out of the migration with the same rows, in the
same order, each date contiguous.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.models import ChargebackRow
from chargeback.core.storage.migrations import CORE_MIGRATIONS, split_statements
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError

NOW = dt.datetime(2024, 5, 4, 6, 0, tzinfo=dt.UTC)
D0 = dt.date(2024, 5, 1)
_files = itertools.count()


def rows_of(tenant: str, day: dt.date, n: int, tag: str) -> list[ChargebackRow]:
    return [
        ChargebackRow(
            tenant, day, f"l{i % 3}", f"id-{i}-{tag}", "KAFKA_NETWORK_READ", "KAFKA",
            "lkc-1", "env-1", "usage", "r", i + 1, None,
        )
        for i in range(n)
    ]  # fmt: skip


async def commit(
    store: SQLiteBackend, tenant: str, day: dt.date, rows: list[ChargebackRow]
) -> None:
    await store.commit_date(
        tenant, day, lines=(), rows=rows, plugin_rows=(), billing_fingerprint="b",
        settings_fingerprint="s", inventory_fingerprint="i", calculated_at=NOW,
    )  # fmt: skip


def check_ranges(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    """Assert every date's range holds exactly its rows and no row is outside a range;
    return each date's rows (without row_id) in row_id order."""
    conn = sqlite3.connect(path)
    try:
        states = conn.execute(
            "SELECT tenant_id, date, first_row_id, row_count FROM date_state"
        ).fetchall()
        out: dict[tuple[str, str], list[tuple[object, ...]]] = {}
        covered = 0
        for tenant, day, first, count in states:
            in_range = conn.execute(
                "SELECT tenant_id, date FROM chargeback_rows WHERE row_id >= ? AND row_id < ?",
                (first, (first or 0) + count),
            ).fetchall()
            assert in_range == [(tenant, day)] * count, (tenant, day, first, count)
            assert (first is None) == (count == 0)
            out[(tenant, day)] = conn.execute(
                "SELECT line_id, identity_id, amount FROM chargeback_rows "
                "WHERE tenant_id = ? AND date = ? ORDER BY row_id",
                (tenant, day),
            ).fetchall()
            assert len(out[(tenant, day)]) == count
            covered += count
        assert conn.execute("SELECT COUNT(*) FROM chargeback_rows").fetchone()[0] == covered
        return out
    finally:
        conn.close()


commits = st.lists(
    st.tuples(st.sampled_from(["t1", "t2"]), st.integers(0, 3), st.integers(0, 6)),
    min_size=1,
    max_size=12,
)


class TestRangesAfterAnyCommits:
    @settings(max_examples=40, deadline=None)
    @given(plan=commits, child=st.booleans())
    def test_each_range_holds_exactly_its_dates_last_rows(self, tmp_path_factory, plan, child):
        """Commits in any order (recalculations in the middle, dates that lose every
        row) leave each date's range exactly its latest rows, on both write paths."""
        path = tmp_path_factory.getbasetemp() / f"ranges-{next(_files)}.db"
        expected: dict[tuple[str, str], list[tuple[object, ...]]] = {}

        async def run() -> list[tuple[ChargebackRow, ...]]:
            store = SQLiteBackend(path, writer_process_min_rows=1 if child else None)
            async with store:
                for n, (tenant, offset, count) in enumerate(plan):
                    day = D0 + dt.timedelta(days=offset)
                    rows = rows_of(tenant, day, count, str(n))
                    await commit(store, tenant, day, rows)
                    expected[(tenant, day.isoformat())] = [
                        (r.line_id, r.identity_id, r.amount) for r in rows
                    ]
                read = []
                for tenant, text in expected:
                    read.append(tuple(await store.read_rows(tenant, dt.date.fromisoformat(text))))
                return read

        read = asyncio.run(run())
        assert check_ranges(path) == expected
        assert [[(r.line_id, r.identity_id, r.amount) for r in rs] for rs in read] == list(
            expected.values()
        )


class TestContiguityCheck:
    async def test_rows_that_cannot_be_contiguous_fail_the_commit_whole(self, tmp_path):
        """With the largest row_id at the 64-bit limit SQLite numbers new rows at
        random: the commit refuses them and keeps the stored version."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path, writer_process_min_rows=None) as store:
            await commit(store, "t1", D0, rows_of("t1", D0, 2, "a"))
            conn = sqlite3.connect(path)
            with conn:
                conn.execute(
                    "INSERT INTO chargeback_rows (row_id, tenant_id, date, line_id, "
                    "identity_id, product_type, product_category, cost_type, rule, amount) "
                    "VALUES (9223372036854775807, 'x', '1999-01-01', 'l', 'i', 'P', 'C', "
                    "'usage', 'r', 0)"
                )
            conn.close()
            with pytest.raises(Exception, match="contiguous row_id range"):
                await commit(store, "t1", D0, rows_of("t1", D0, 3, "b"))
            assert [r.identity_id for r in await store.read_rows("t1", D0)] == ["id-0-a", "id-1-a"]


# The first schema's chargeback_rows as migration 1 made it, for the upgrade tests.
_V1 = CORE_MIGRATIONS[0]


def version_1(path: Path) -> sqlite3.Connection:
    """A new database file at core version 1, as the first release left it; returns a
    connection (autocommit mode) inside an open transaction, to add rows and commit."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(
        "CREATE TABLE schema_migrations (namespace TEXT NOT NULL, version INTEGER NOT NULL, "
        "name TEXT NOT NULL, applied_at TEXT NOT NULL, PRIMARY KEY (namespace, version)) "
        "WITHOUT ROWID"
    )
    conn.execute("BEGIN")
    for statement in split_statements(_V1.sql):
        conn.execute(statement)
    conn.execute(
        "INSERT INTO schema_migrations VALUES ('core', 1, ?, '2024-01-01T00:00:00.000000+00:00')",
        (_V1.name,),
    )
    return conn


def v1_database(path: Path) -> None:
    """A database at core version 1 with rows interleaved across dates and tenants,
    one date recalculated (its rows after others'), one orphan row and an empty date."""
    conn = version_1(path)
    insert = (
        "INSERT INTO chargeback_rows (tenant_id, date, line_id, identity_id, product_type, "
        "product_category, resource_id, env_id, cost_type, rule, amount, reason) "
        "VALUES (?, ?, ?, ?, 'P', 'C', NULL, NULL, 'usage', 'r', ?, NULL)"
    )
    # Interleaved on purpose: migration 2 must not assume old rowids were contiguous.
    for i in range(6):
        conn.execute(insert, ("t1", "2024-05-02", f"l{i}", f"a{i}", i))
        conn.execute(insert, ("t2", "2024-05-01", f"l{i}", f"b{i}", 10 + i))
        conn.execute(insert, ("t1", "2024-05-01", f"l{i}", f"c{i}", 20 + i))
    conn.execute(insert, ("t1", "2024-04-01", "orphan", "o", 99))  # no date_state
    state = (
        "INSERT INTO date_state VALUES (?, ?, 'b', 's', 'i', 1, "
        "'2024-05-04T00:00:00.000000+00:00', 0, ?, 0, ?, 0)"
    )
    conn.execute(state, ("t1", "2024-05-01", 6, sum(range(20, 26))))
    conn.execute(state, ("t1", "2024-05-02", 6, sum(range(6))))
    conn.execute(state, ("t2", "2024-05-01", 6, sum(range(10, 16))))
    conn.execute(state, ("t2", "2024-05-03", 0, 0))  # a date without rows
    conn.execute("COMMIT")
    conn.close()


def v1_rows(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        out: dict[tuple[str, str], list[tuple[object, ...]]] = {}
        for r in conn.execute(
            "SELECT tenant_id, date, line_id, identity_id, amount FROM chargeback_rows "
            "ORDER BY rowid"
        ):
            out.setdefault((r[0], r[1]), []).append(r[2:])
        return out
    finally:
        conn.close()


class TestMigrationFromV1:
    async def test_rows_come_through_in_order_with_contiguous_ranges(self, tmp_path):
        """Interleaved v1 rows: each date contiguous, in its old order, nothing lost,
        the old index gone, the empty date without a range, the same totals."""
        path = tmp_path / "v1.db"
        v1_database(path)
        before = v1_rows(path)
        async with SQLiteBackend(path) as store:
            read = {
                key: [(r.line_id, r.identity_id, r.amount) for r in await store.read_rows(
                    key[0], dt.date.fromisoformat(key[1])
                )]
                for key in before
            }  # fmt: skip
            totals = await store.cost_totals(None, dt.date(2024, 1, 1), dt.date(2025, 1, 1))
            recon = await store.reconcile("t1", dt.date(2024, 5, 1), dt.date(2024, 5, 3))
        orphan = ("t1", "2024-04-01")
        assert read.pop(orphan) == []  # no date_state: not a calculated date's row
        assert read == {k: v for k, v in before.items() if k != orphan}
        conn = sqlite3.connect(path)
        try:
            states = {
                (t, d): (first, n)
                for t, d, first, n in conn.execute(
                    "SELECT tenant_id, date, first_row_id, row_count FROM date_state"
                )
            }
            stored = conn.execute(
                "SELECT tenant_id, date, line_id, identity_id, amount FROM chargeback_rows "
                "ORDER BY row_id"
            ).fetchall()
            indexes = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'chargeback_rows'"
            ).fetchall()
            version = conn.execute(
                "SELECT MAX(version) FROM schema_migrations WHERE namespace = 'core'"
            ).fetchone()[0]
        finally:
            conn.close()
        assert version == len(CORE_MIGRATIONS) >= 2
        assert indexes == []
        # Nothing was lost: the orphan row is still stored (after the dated ones).
        assert sorted(stored) == sorted((t, d, *r) for (t, d), rows in before.items() for r in rows)
        assert states[("t2", "2024-05-03")] == (None, 0)
        for key in (("t1", "2024-05-01"), ("t1", "2024-05-02"), ("t2", "2024-05-01")):
            first, n = states[key]
            assert [tuple(s[2:]) for s in stored[first - 1 : first - 1 + n]] == before[key]
        stored_amounts = sum(range(6)) + sum(range(10, 16)) + sum(range(20, 26))
        assert sum(t.amount for t in totals) == stored_amounts
        assert [(r.day.isoformat(), r.allocated) for r in recon] == [
            ("2024-05-01", sum(range(20, 26))),
            ("2024-05-02", sum(range(6))),
        ]

    async def test_a_file_whose_index_was_dropped_still_upgrades(self, tmp_path):
        """Migration 2 does not depend on the old index being there."""
        path = tmp_path / "v1.db"
        v1_database(path)
        before = v1_rows(path)
        conn = sqlite3.connect(path)
        conn.execute("DROP INDEX chargeback_rows_by_date")
        conn.commit()
        conn.close()
        async with SQLiteBackend(path, writer_process_min_rows=None):
            pass
        by_date = check_ranges_except_orphans(path)
        assert by_date.pop(("t2", "2024-05-03")) == []  # the date without rows
        assert by_date == {k: v for k, v in before.items() if k[1] != "2024-04-01"}

    async def test_a_migrated_date_recalculates_in_place_of_its_old_rows(self, tmp_path):
        """After the upgrade a commit deletes the date's migrated range and appends."""
        path = tmp_path / "v1.db"
        v1_database(path)
        async with SQLiteBackend(path, writer_process_min_rows=None) as store:
            await commit(store, "t1", dt.date(2024, 5, 1), rows_of("t1", D0, 4, "new"))
        by_date = check_ranges_except_orphans(path)
        assert [r[1] for r in by_date[("t1", "2024-05-01")]] == [f"id-{i}-new" for i in range(4)]
        assert [r[1] for r in by_date[("t1", "2024-05-02")]] == [f"a{i}" for i in range(6)]


class TestReadOnlyBeforeTheUpgrade:
    async def test_a_read_only_open_of_a_version_1_file_says_to_upgrade_it(self, tmp_path):
        """``chargeback reconcile`` (read-only) on a file the new daemon has not migrated
        yet fails with what to do, not with an SQL error about a missing column; the
        file is left as it was."""
        path = tmp_path / "v1.db"
        v1_database(path)
        before = v1_rows(path)
        with pytest.raises(StorageError, match=r"schema version 1 .*start the daemon"):
            await SQLiteBackend(path, read_only=True).open()
        assert v1_rows(path) == before
        async with SQLiteBackend(path, read_only=False):
            pass
        async with SQLiteBackend(path, read_only=True) as store:
            assert len(await store.read_rows("t1", dt.date(2024, 5, 2))) == 6


def check_ranges_except_orphans(path: Path) -> dict[tuple[str, str], list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM chargeback_rows WHERE date = '2024-04-01'")
    conn.close()
    return check_ranges(path)
