"""The tenant lifecycle end to end: example plugin, real SQLite, real emitters."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.engine import usage as usage_seam
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, RunStatus
from chargeback.core.engine.usage import RunUsage
from chargeback.core.models import UNALLOCATED, ChargebackRow, MetricQuery, UsageTable
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError, SourceError, StorageError

NOW = dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)
MakeRuntime = Callable[..., TenantRuntime]

WINDOW = [dt.date(2026, 3, d) for d in range(2, 9)]
START, END = WINDOW[0], WINDOW[-1] + dt.timedelta(days=1)


def state_of(rt: TenantRuntime) -> Any:
    return cast(Any, rt.plugin).state


async def snapshot(
    storage: SQLiteBackend, tenant: str = "acme"
) -> dict[dt.date, list[ChargebackRow]]:
    return {d: await storage.read_rows(tenant, d) for d in WINDOW}


async def seqs(storage: SQLiteBackend, tenant: str = "acme") -> dict[dt.date, int]:
    states = await storage.get_date_states(tenant, START, END)
    return {d: s.calc_seq for d, s in states.items()}


def storage_ids(rows: list[ChargebackRow]) -> set[str]:
    return {r.identity_id for r in rows if r.product_type == "STORAGE_GB"}


def emitters_for(tmp_path: Path, storage: SQLiteBackend) -> list[NamedEmitter]:
    return [
        NamedEmitter(
            "csv",
            emitter_registry.create(
                "csv", {"output_dir": str(tmp_path / "csv")}, storage_backend=storage
            ),
        ),
        NamedEmitter(
            "jsonl",
            emitter_registry.create(
                "example_jsonl", {"output_dir": str(tmp_path / "jsonl")}, storage_backend=storage
            ),
        ),
    ]


class TestLifecycle:
    async def test_full_run(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path
    ) -> None:
        """Steps 1-9 in order; every window date committed, conserved, stored and emitted."""
        rt = make_runtime(emitters=emitters_for(tmp_path, storage))
        plugin = cast(Any, rt.plugin)
        summary = await rt.run("test")
        assert summary.status is RunStatus.SUCCESS, summary.error
        assert plugin.lifecycle[:7] == [
            "initialize",
            "handlers",
            "cost_input",
            "metrics_source",
            "storage_module",
            "fallback",
            "shared_context",
        ]
        assert summary.dates_calculated == len(WINDOW)
        assert summary.emitted == 2 * len(WINDOW)
        assert summary.emit_failures == 0
        # conservation: reconcile shows no difference for any date and product type
        recon = await storage.reconcile("acme", START, END)
        assert recon
        assert all(r.difference == 0 for r in recon)
        assert {r.day for r in recon} == set(WINDOW)
        rows = await snapshot(storage)
        day2 = rows[dt.date(2026, 3, 2)]
        # unknown type -> fallback; malformed line -> source_error; credit spread over identities
        assert {r.reason for r in day2 if r.product_type == "MYSTERY_PRODUCT"} == {
            "fallback: unknown product type MYSTERY_PRODUCT"
        }
        broken = [r for r in day2 if r.line_id.endswith(":broken")]
        assert [(r.identity_id, r.reason) for r in broken] == [
            (UNALLOCATED, "source_error: unparseable price")
        ]
        credit = [r for r in day2 if r.product_type == "COMPUTE_CREDIT"]
        assert sum(r.amount for r in credit) == -123_456_789
        assert all(r.amount < 0 for r in credit)
        # sa-5 exists only from 2026-03-03: not charged the day before, charged after
        assert "sa-5" not in {r.identity_id for r in day2}
        assert "sa-5" in {r.identity_id for r in rows[dt.date(2026, 3, 4)]}
        # the plugin's own table got one row per line, in the same commits
        with sqlite3.connect(storage.path) as db:
            n = db.execute(
                "SELECT count(*) FROM example_billing WHERE tenant_id='acme'"
            ).fetchone()[0]
            lines = db.execute(
                "SELECT count(*) FROM billing_lines WHERE tenant_id='acme'"
            ).fetchone()[0]
        assert n == lines == summary.lines_read
        # emitters: a CSV per date with the stored rows; the storage-backed emitter saw them
        for d in WINDOW:
            with (tmp_path / "csv" / "acme" / f"{d}.csv").open() as fh:
                data = list(csv.DictReader(fh))
            assert len(data) == len(rows[d])
            got = json.loads((tmp_path / "jsonl" / f"acme-{d}.json").read_text())
            assert got["rows"] == got["stored"] == len(rows[d])
        runs = await storage.list_runs("acme")
        assert runs[0].status == "success"
        assert runs[0].counts["dates_calculated"] == len(WINDOW)
        await rt.aclose()
        await rt.aclose()
        assert plugin.closed == 1
        assert plugin.lifecycle[-1] == "close"

    async def test_start_is_idempotent(self, make_runtime: MakeRuntime) -> None:
        """start() twice initializes the plugin once."""
        rt = make_runtime()
        await rt.start()
        await rt.start()
        await rt.run()
        assert cast(Any, rt.plugin).initialized == 1

    async def test_invalid_settings_name_tenant_and_field(self, make_runtime: MakeRuntime) -> None:
        """A pydantic error in plugin_settings becomes a ConfigError naming tenant and field."""
        rt = make_runtime({"clusters": "many"})
        with pytest.raises(ConfigError) as info:
            await rt.start()
        assert "'acme'" in str(info.value)
        assert "plugin_settings.clusters" in str(info.value)
        assert info.value.field == "tenants.acme.plugin_settings.clusters"
        summary = await rt.run()
        assert summary.status is RunStatus.FAILED
        assert "plugin_settings.clusters" in (summary.error or "")


class TestIdempotency:
    async def test_second_run_changes_nothing(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path
    ) -> None:
        """Running again gives identical rows, no writes, and fetches only the recalc window."""
        rt = make_runtime(emitters=emitters_for(tmp_path, storage))
        await rt.run()
        before, seq_before = await snapshot(storage), await seqs(storage)
        calls = state_of(rt).calls
        calls.clear()
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        assert summary.dates_calculated == 0
        assert summary.emitted == 0
        assert await snapshot(storage) == before
        assert await seqs(storage) == seq_before
        assert calls["billing_days"] == 2  # only the recalc window
        assert calls["metrics"] == 0

    async def test_settled_tenant_makes_no_api_call(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """With no recalc window and everything calculated, a run calls no API at all."""
        rt = make_runtime(recalc_days=0)
        await rt.run()
        calls = state_of(rt).calls
        calls.clear()
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        assert summary.dates_skipped == len(WINDOW)
        assert sum(calls.values()) == 0

    async def test_fresh_database_same_rows(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path, registry, clock
    ) -> None:
        """Two databases calculated from the same inputs hold identical rows."""
        await make_runtime().run()
        other = SQLiteBackend(tmp_path / "other.db")
        await other.open()
        try:
            rt2 = TenantRuntime(
                make_runtime().config, registry.create("example"), other, clock=clock
            )
            await rt2.run()
            await rt2.aclose()
            assert await snapshot(other) == await snapshot(storage)
        finally:
            await other.close()


class TestChunks:
    """A run goes chunk by chunk: the next chunk's billing downloads while one is written."""

    async def test_chunked_run_equals_one_chunk(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path, registry, clock
    ) -> None:
        """Chunks of 2 days store exactly the rows of one chunk for the whole window, with
        the same usage queries (each resource asked once per run)."""
        chunked = make_runtime(chunk_days=2)
        summary = await chunked.run()
        assert summary.status is RunStatus.SUCCESS
        assert summary.dates_calculated == len(WINDOW)
        assert state_of(chunked).calls["billing"] == 4  # 7 dates: 2 + 2 + 2 + 1
        other = SQLiteBackend(tmp_path / "whole.db")
        await other.open()
        try:
            whole = TenantRuntime(
                make_runtime().config, registry.create("example"), other, clock=clock,
                chunk_days=1000,
            )  # fmt: skip
            await whole.run()
            await whole.aclose()
            assert state_of(whole).calls["billing"] == 1
            assert state_of(chunked).calls["metrics"] == state_of(whole).calls["metrics"]
            assert await snapshot(other) == await snapshot(storage)
        finally:
            await other.close()

    async def test_usage_in_batches_of_resources_equals_all_at_once(
        self,
        *,
        make_runtime: MakeRuntime,
        storage: SQLiteBackend,
        tmp_path: Path,
        registry,
        clock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Usage fetched one resource at a time asks each query for each resource once,
        over the same range, and stores exactly the rows of one fetch per query."""
        asked: list[tuple[str, tuple[str, ...], dt.date, dt.date]] = []

        async def run(runtime: TenantRuntime) -> None:
            await runtime.start()
            metrics = runtime._metrics
            assert metrics is not None
            original = metrics.fetch

            async def fetch(query: Any, ids: Any, start: dt.date, end: dt.date) -> Any:
                asked.append((query.key, tuple(ids), start, end))
                return await original(query, ids, start, end)

            metrics.fetch = fetch  # type: ignore[method-assign,assignment]
            assert (await runtime.run()).status is RunStatus.SUCCESS
            await runtime.aclose()

        other = SQLiteBackend(tmp_path / "whole.db")
        await other.open()
        try:
            whole = TenantRuntime(
                make_runtime().config, registry.create("example"), other, clock=clock
            )
            await run(whole)
            at_once, asked[:] = list(asked), []
            monkeypatch.setattr(usage_seam, "RESOURCES_PER_FETCH", 1)
            await run(make_runtime())
            assert len(at_once) == 1
            assert len(at_once[0][1]) > 1  # several resources, fetched one by one below
            assert sorted((key, ids) for key, ids, *_ in asked) == [
                (at_once[0][0], (rid,)) for rid in at_once[0][1]
            ]
            assert {(start, end) for *_, start, end in asked} == {at_once[0][2:]}
            assert await snapshot(other) == await snapshot(storage)
        finally:
            await other.close()

    async def test_a_batchs_queries_run_together_and_all_finish_before_an_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The queries of one batch of resources are in flight together; when one fails,
        the others still finish (nothing is left running) and the first error is raised."""
        events: list[str] = []

        class Source:
            async def fetch(
                self, query: MetricQuery, ids: Sequence[str], start: dt.date, end: dt.date
            ) -> UsageTable:
                events.append(f"start {query.key} {','.join(ids)}")
                for _ in range(2 if query.key == "bad" else 6):  # the good one ends last
                    await asyncio.sleep(0)
                events.append(f"end {query.key} {','.join(ids)}")
                if query.key == "bad" and ids == ["r3"]:
                    raise SourceError("injected metrics failure of one query")
                return {(start, rid): {"p": 1} for rid in ids}

        def query(key: str) -> MetricQuery:
            return MetricQuery(key, f"m/{key}", "resource.id", "metric.principal_id")

        monkeypatch.setattr(usage_seam, "RESOURCES_PER_FETCH", 2)
        needed = {query("bad"): {"r1", "r2", "r3"}, query("good"): {"r1", "r3"}}
        usage = RunUsage(Source())
        with pytest.raises(SourceError, match="one query"):
            await usage.prepare(needed, WINDOW[0], WINDOW[0])
        assert events == [
            "start bad r1,r2", "start good r1", "end bad r1,r2", "end good r1",
            "start bad r3", "start good r3", "end bad r3", "end good r3",
        ]  # fmt: skip
        assert usage.for_date(WINDOW[0]) == {
            query("bad"): {(WINDOW[0], "r1"): {"p": 1}, (WINDOW[0], "r2"): {"p": 1}},
            query("good"): {(WINDOW[0], "r1"): {"p": 1}},
        }

    async def test_a_failing_later_chunk_keeps_the_dates_before_it(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """If the billing of a later chunk fails, the dates of the chunks before it are
        committed whole, the run fails with the error, and the next run completes."""
        rt = make_runtime(chunk_days=3)
        await rt.start()
        source = rt._cost_input
        assert source is not None
        original = source.gather
        fail_from = WINDOW[3]

        async def gather(tenant: str, start: dt.date, end: dt.date) -> AsyncIterator[Any]:
            if start >= fail_from:
                raise SourceError("injected billing failure of a later chunk")
            async for line in original(tenant, start, end):
                yield line

        source.gather = gather  # type: ignore[method-assign,assignment]
        summary = await rt.run()
        assert summary.status is RunStatus.FAILED
        assert "later chunk" in (summary.error or "")
        assert set(await seqs(storage)) == set(WINDOW[:3])
        source.gather = original  # type: ignore[method-assign]
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        assert set(await seqs(storage)) == set(WINDOW)


class TestChangedInputs:
    async def test_changed_billing_replaces_exactly_that_date(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path
    ) -> None:
        """A billing change on a recalc-window date recalculates and re-emits only that date."""
        rt = make_runtime(emitters=emitters_for(tmp_path, storage))
        await rt.run()
        before, seq_before = await snapshot(storage), await seqs(storage)
        changed = dt.date(2026, 3, 8)
        csv_path = tmp_path / "csv" / "acme" / f"{changed}.csv"
        old_csv = csv_path.read_text()
        state_of(rt).bumps[changed] = 1_000_000_000
        summary = await rt.run()
        assert summary.dates_calculated == 1
        after, seq_after = await snapshot(storage), await seqs(storage)
        assert seq_after == {**seq_before, changed: seq_before[changed] + 1}
        assert {d: r for d, r in after.items() if d != changed} == {
            d: r for d, r in before.items() if d != changed
        }
        assert (
            sum(r.amount for r in after[changed])
            == sum(r.amount for r in before[changed]) + 1_000_000_000
        )
        assert len({(r.line_id, r.identity_id, r.cost_type) for r in after[changed]}) == len(
            after[changed]
        )
        assert csv_path.read_text() != old_csv
        assert summary.emitted == 2

    async def test_rerun_request_recalculates_old_date(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """An operator's rerun picks up a changed old date and is then completed."""
        rt = make_runtime()
        await rt.run()
        old = dt.date(2026, 3, 3)
        state_of(rt).bumps[old] = 5
        summary = await rt.run()
        assert summary.dates_calculated == 0  # outside the recalc window: not noticed
        seq_before = await seqs(storage)
        await storage.request_rerun("acme", old, old, NOW)
        summary = await rt.run("rerun")
        assert summary.dates_calculated == 1
        assert (await seqs(storage))[old] == seq_before[old] + 1
        assert await storage.pending_reruns("acme") == []
        recon = await storage.reconcile("acme", old, old + dt.timedelta(days=1))
        assert all(r.difference == 0 for r in recon)

    async def test_rerun_without_changes_still_recalculates(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A rerun recalculates its dates even when nothing changed; rows stay the same."""
        rt = make_runtime()
        await rt.run()
        before = await snapshot(storage)
        await storage.request_rerun("acme", dt.date(2026, 3, 2), dt.date(2026, 3, 4), NOW)
        summary = await rt.run("rerun")
        assert summary.dates_calculated == 3
        assert await snapshot(storage) == before

    async def test_settings_change_recalculates_all(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """Changed allocation settings recalculate every date; changed credentials do not."""
        await make_runtime({"api_key": "one"}).run()
        before = await snapshot(storage)
        same = await make_runtime({"api_key": "two"}).run()
        assert same.dates_calculated == 0
        changed = await make_runtime({"api_key": "two", "storage_rule": "even"}).run()
        assert changed.dates_calculated == len(WINDOW)
        after = await snapshot(storage)
        assert storage_ids(after[WINDOW[-1]]) > storage_ids(before[WINDOW[-1]])

    async def test_inventory_change_recalculates_recalc_window_only(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A deleted identity recalculates the recalc window, not older dates."""
        rt = make_runtime()
        await rt.run()
        seq_before = await seqs(storage)
        state_of(rt).hidden.add("sa-2")
        summary = await rt.run()
        assert summary.dates_calculated == 2
        seq_after = await seqs(storage)
        assert [d for d in WINDOW if seq_after[d] != seq_before[d]] == WINDOW[-2:]
        _, identities = await storage.load_inventory("acme")
        assert {i.identity_id for i in identities if i.deleted_at is not None} == {"sa-2"}
        # deleted today, so still charged for the (older) days it worked
        assert "sa-2" in {r.identity_id for r in (await snapshot(storage))[WINDOW[-1]]}

    async def test_unchanged_inventory_is_not_reloaded(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A runtime's later runs reuse its synced inventory until the listing changes."""
        rt = make_runtime()
        await rt.run()
        loads = 0
        load = storage.load_inventory

        async def counting(tenant_id: str) -> Any:
            nonlocal loads
            loads += 1
            return await load(tenant_id)

        cast(Any, storage).load_inventory = counting
        await rt.run()
        assert loads == 0
        state_of(rt).hidden.add("sa-2")
        await rt.run()
        assert loads == 1
        rt_inventory = cast(Any, rt)._inventory
        assert {i.identity_id for i in rt_inventory.identities if i.deleted_at} == {"sa-2"}


class TestOverrides:
    def _module(self) -> str:
        [name] = [m for m in sys.modules if "example_plugin" in m and m.endswith(".allocators")][
            -1:
        ]
        return name

    async def test_allocator_and_resolver_overrides(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """Per product type, dotted-path overrides replace the handler's allocator and resolver."""
        mod = self._module()
        rt = make_runtime(
            {
                "allocator_overrides": {"COMPUTE_HOURS": f"{mod}:first_identity_override"},
                "identity_resolver_overrides": {"COMPUTE_HOURS": f"{mod}.only_sa_1_resolver"},
            }
        )
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        rows = (await snapshot(storage))[WINDOW[0]]
        compute = [
            r for r in rows if r.product_type == "COMPUTE_HOURS" and r.identity_id != UNALLOCATED
        ]
        assert compute
        assert {(r.identity_id, r.rule) for r in compute} == {("sa-1", "override")}

    async def test_bad_override_fails_start(self, make_runtime: MakeRuntime) -> None:
        """An override that is not callable is a ConfigError naming tenant, type and path."""
        mod = self._module()
        rt = make_runtime({"allocator_overrides": {"STORAGE_GB": f"{mod}:NOT_CALLABLE"}})
        with pytest.raises(
            ConfigError, match=r"tenant 'acme', product type 'STORAGE_GB'.*NOT_CALLABLE"
        ):
            await rt.start()

    async def test_no_fallback_unallocated_with_warning(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """Without a fallback, unknown product types go to UNALLOCATED, warned once per run."""
        rt = make_runtime({"use_fallback": False})
        with capture_logs() as logs:
            await rt.run()
        rows = (await snapshot(storage))[WINDOW[0]]
        assert {r.reason for r in rows if r.product_type == "MYSTERY_PRODUCT"} == {
            "no handler for product type MYSTERY_PRODUCT"
        }
        assert len([e for e in logs if e["event"] == "no handler for product type"]) == 1


class TestFailures:
    @pytest.mark.parametrize("what", ["billing", "metrics", "shared"])
    async def test_source_failure_fails_cleanly(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, what: str
    ) -> None:
        """A failing API fails the run with the error, writes no date, and the next run recovers."""
        rt = make_runtime()
        state_of(rt).fail.add(what)
        summary = await rt.run()
        assert summary.status is RunStatus.FAILED
        assert f"injected {what} failure" in (summary.error or "")
        assert await seqs(storage) == {}
        runs = await storage.list_runs("acme")
        assert (runs[0].status, runs[0].error) == ("failed", summary.error)
        state_of(rt).fail.clear()
        assert (await rt.run()).dates_calculated == len(WINDOW)

    async def test_inventory_failure_keeps_known_inventory(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A failed listing deletes nothing and the run still succeeds on the stored inventory."""
        rt = make_runtime()
        await rt.run()
        state_of(rt).fail.add("inventory")
        state_of(rt).hidden.add("sa-1")
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        _, identities = await storage.load_inventory("acme")
        assert all(i.deleted_at is None for i in identities)

    async def test_deletion_guard_on_empty_listing(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A listing that suddenly returns no clusters deletes none of them."""
        rt = make_runtime()
        await rt.run()
        state_of(rt).hidden.update({"c-1", "c-2", "c-3"})
        with capture_logs() as logs:
            await rt.run()
        resources, _ = await storage.load_inventory("acme")
        assert all(r.deleted_at is None for r in resources)
        assert any(
            e["event"] == "deletion suppressed: empty listing" and e["type"] == "cluster"
            for e in logs
        )

    async def test_deletion_guard_ratio(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A listing missing more than the guard ratio of a type deletes nothing of it."""
        rt = make_runtime()
        await rt.run()
        state_of(rt).hidden.update({"sa-1", "sa-2", "sa-3"})
        await rt.run()
        _, identities = await storage.load_inventory("acme")
        assert all(i.deleted_at is None for i in identities)

    async def test_timeout(self, make_runtime: MakeRuntime, storage: SQLiteBackend) -> None:
        """A run longer than run_timeout_s fails with a timeout error."""
        rt = make_runtime(run_timeout_s=0.000001)
        summary = await rt.run()
        assert summary.status is RunStatus.FAILED
        assert "timed out" in (summary.error or "")

    async def test_cancel_records_cancelled(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """Cancelling a run records it as cancelled and re-raises."""
        rt = make_runtime()
        gate = asyncio.Event()
        original = rt.plugin.build_shared_context

        async def stuck(tenant_id: str) -> Any:
            gate.set()
            await asyncio.sleep(3600)
            return await original(tenant_id)

        cast(Any, rt.plugin).build_shared_context = stuck
        task = asyncio.create_task(rt.run())
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        runs = await storage.list_runs("acme")
        assert runs[0].status == "cancelled"
        assert await seqs(storage) == {}


class TestFailedWrites:
    """A date write that fails or is cancelled leaves whole dates only."""

    async def test_failed_commit_stops_later_dates(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend
    ) -> None:
        """A date whose commit fails fails the run; earlier dates stay, later ones wait.

        The one date already queued behind the failed commit (allocated while it was
        written, waiting for the write lock) still commits, whole; none after it does.
        """
        rt = make_runtime()
        commit = storage.commit_date

        async def failing(tenant_id: str, day: dt.date, **kwargs: Any) -> Any:
            if day == WINDOW[2]:
                raise StorageError("committing failed: disk full")
            return await commit(tenant_id, day, **kwargs)

        cast(Any, storage).commit_date = failing
        summary = await rt.run()
        assert summary.status is RunStatus.FAILED
        assert "disk full" in (summary.error or "")
        assert set(await seqs(storage)) == {*WINDOW[:2], WINDOW[3]}
        cast(Any, storage).commit_date = commit
        assert (await rt.run()).dates_calculated == len(WINDOW) - 3
        assert set(await seqs(storage)) == set(WINDOW)

    async def test_cancel_during_a_write_leaves_whole_dates(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path
    ) -> None:
        """Cancelled while a date is being written: that date is absent, not half-written."""
        rt = make_runtime()
        commit = storage.commit_date
        blocked = asyncio.Event()

        async def slow(tenant_id: str, day: dt.date, **kwargs: Any) -> Any:
            if day == WINDOW[1]:
                blocked.set()
                await asyncio.sleep(3600)
            return await commit(tenant_id, day, **kwargs)

        cast(Any, storage).commit_date = slow
        task = asyncio.create_task(rt.run())
        await blocked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert set(await seqs(storage)) == {WINDOW[0]}
        assert (await storage.list_runs("acme"))[0].status == "cancelled"
        cast(Any, storage).commit_date = commit
        await rt.run()
        fresh = SQLiteBackend(tmp_path / "fresh.db")
        await fresh.open()
        try:
            clean = make_runtime()
            clean.storage = fresh
            await clean.run()
            assert await snapshot(storage) == await snapshot(fresh)
        finally:
            await fresh.close()


class TestEmitterFailure:
    async def test_failed_emit_retried_next_run_without_recalculation(
        self, make_runtime: MakeRuntime, storage: SQLiteBackend, tmp_path: Path
    ) -> None:
        """A failing emitter keeps the commit, others still emit, and the next run retries it."""
        emitters = emitters_for(tmp_path, storage)
        jsonl = cast(Any, emitters[1].emitter)
        jsonl.fail = True
        rt = make_runtime(emitters=emitters)
        summary = await rt.run()
        assert summary.status is RunStatus.SUCCESS
        assert summary.dates_calculated == len(WINDOW)
        assert summary.emit_failures == len(WINDOW)
        assert summary.emitted == len(WINDOW)  # csv
        assert len(list((tmp_path / "csv" / "acme").glob("*.csv"))) == len(WINDOW)
        assert await storage.pending_emissions("acme", "jsonl") != []
        assert await storage.pending_emissions("acme", "csv") == []
        jsonl.fail = False
        again = await rt.run()
        assert again.dates_calculated == 0
        assert again.emitted == len(WINDOW)
        assert await storage.pending_emissions("acme", "jsonl") == []
        assert len(list((tmp_path / "jsonl").glob("*.json"))) == len(WINDOW)


class TestUsageSeam:
    """A run's usage comes only through TenantRuntime.usage_for_run() (engine/usage.py)."""

    async def test_the_pipeline_asks_its_provider_once_per_chunk_and_once_per_date(
        self, make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """prepare() is called once per chunk with the chunk's first changed date and the
        run's last date; for_date() once per allocated date, oldest first, after the
        date's chunk was prepared."""
        calls: list[tuple[str, dt.date, dt.date | None]] = []
        rt = make_runtime(chunk_days=3)

        class Recording:
            def __init__(self, inner: RunUsage) -> None:
                self.inner = inner

            async def prepare(
                self, needed: dict[MetricQuery, set[str]], first: dt.date, last: dt.date
            ) -> None:
                assert needed  # the example's lines need usage
                calls.append(("prepare", first, last))
                await self.inner.prepare(needed, first, last)

            def for_date(self, day: dt.date) -> dict[MetricQuery, UsageTable]:
                calls.append(("for_date", day, None))
                return self.inner.for_date(day)

        monkeypatch.setattr(rt, "usage_for_run", lambda: Recording(RunUsage(rt._metrics)))
        assert (await rt.run()).dates_calculated == len(WINDOW)
        last = WINDOW[-1]
        assert calls == [
            ("prepare", WINDOW[0], last), *(("for_date", d, None) for d in WINDOW[0:3]),
            ("prepare", WINDOW[3], last), *(("for_date", d, None) for d in WINDOW[3:6]),
            ("prepare", WINDOW[6], last), ("for_date", WINDOW[6], None),
        ]  # fmt: skip

    async def test_the_dates_are_split_by_what_the_provider_answers(
        self,
        *,
        make_runtime: MakeRuntime,
        storage: SQLiteBackend,
        tmp_path: Path,
        registry,
        clock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A provider that answers no usage at all makes the metrics source go unasked
        and changes the usage-based splits; the plain provider's rows are the metrics'."""
        await make_runtime().run()
        other = SQLiteBackend(tmp_path / "no-usage.db")
        await other.open()
        try:
            rt = TenantRuntime(
                make_runtime().config, registry.create("example"), other, clock=clock
            )

            class NoUsage:
                async def prepare(
                    self, needed: dict[MetricQuery, set[str]], first: dt.date, last: dt.date
                ) -> None:
                    return None

                def for_date(self, day: dt.date) -> dict[MetricQuery, UsageTable]:
                    return {}

            monkeypatch.setattr(rt, "usage_for_run", NoUsage)
            assert (await rt.run()).status is RunStatus.SUCCESS
            await rt.aclose()
            assert state_of(rt).calls["metrics"] == 0
            with_usage, without = await snapshot(storage), await snapshot(other)
            assert with_usage != without
            for day in WINDOW:  # the same lines, conserved either way
                assert sum(r.amount for r in with_usage[day]) == sum(r.amount for r in without[day])
        finally:
            await other.close()
