"""The per-tenant lifecycle (seed "Lifecycle" steps 1-9; DESIGN §3, §4).

:class:`TenantRuntime` owns one tenant's plugin instance: :meth:`~TenantRuntime.start`
walks steps 1-6 once, :meth:`~TenantRuntime.run` does step 7 and step 8 for the dates
that need work, :meth:`~TenantRuntime.aclose` is step 9.

One run::

    pending reruns -> candidate dates (no candidates: no API call at all)
    -> shared context -> inventory (once, with the deletion guard)
    -> billing for the span of candidates -> dates whose inputs changed
    -> usage (one fetch per metric query for the whole range)
    -> per date, oldest first: allocate -> commit (one transaction) -> emit
    -> complete reruns, record the run
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence

import pydantic
import structlog

from chargeback.core.emitters.runner import EmitOutcome, emit_date, emit_pending
from chargeback.core.engine import dates as datesel
from chargeback.core.engine.allocation import DateAllocation, Dispatcher, RunNotes
from chargeback.core.engine.gcpolicy import collect_young, young_collections_only
from chargeback.core.engine.inventory import Inventory, gather_inventory
from chargeback.core.engine.spool import LineSpool, UsageSpool
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary, TenantConfig
from chargeback.core.models import (
    BillingLineItem,
    ChargebackRow,
    IdentitySet,
    MetricQuery,
    Resource,
    UsageTable,
)
from chargeback.core.plugin.overrides import load_overrides
from chargeback.core.plugin.protocols import (
    CostAllocator,
    CostInput,
    EcosystemPlugin,
    MetricsSource,
    PluginRows,
    ServiceHandler,
    StorageModule,
)
from chargeback.core.storage.backend import DateState, StorageBackend
from chargeback.errors import ConfigError, PluginError, StorageError

__all__ = ["TenantRuntime"]

log = structlog.get_logger(__name__)

_COMMITS_IN_FLIGHT = 2
"""Dates committed or queued to commit while the next is allocated."""
_COLLECT_EVERY = 8
"""Dates allocated between two collections of the young generations (see gcpolicy)."""
_ALLOCATION_SLICE = 50
"""Lines allocated between two yields to the event loop (a few milliseconds of work)."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _validation_message(tenant: str, exc: pydantic.ValidationError) -> tuple[str, str]:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": str(exc)}
    loc = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
    count = exc.error_count()
    more = f" (and {count - 1} more)" if count > 1 else ""
    return (
        f"tenant {tenant!r}: invalid plugin_settings.{loc}: {first.get('msg')}{more}",
        f"tenants.{tenant}.plugin_settings.{loc}",
    )


class TenantRuntime:
    """One tenant's plugin, settings and storage, and the runs over them.

    Args:
        config: the tenant's settings.
        plugin: a fresh plugin instance (from the plugin registry).
        storage: the open storage backend.
        emitters: the emitters every committed date goes to.
        clock: returns the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        config: TenantConfig,
        plugin: EcosystemPlugin,
        storage: StorageBackend,
        emitters: Sequence[NamedEmitter] = (),
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.config = config
        self.plugin = plugin
        self.storage = storage
        self.emitters = tuple(emitters)
        self._clock = clock
        self._started = False
        self._initialized = False
        self._closed = False
        self._lock = asyncio.Lock()
        self._handlers: Mapping[str, ServiceHandler] = {}
        self._cost_input: CostInput | None = None
        self._metrics: MetricsSource | None = None
        self._storage_module: StorageModule | None = None
        self._fallback: CostAllocator | None = None
        self._dispatcher: Dispatcher | None = None
        self._settings_fp = datesel.settings_fingerprint(config.plugin_settings)
        self._unrecorded: list[RunSummary] = []
        self._inventory: Inventory | None = None

    @property
    def tenant_id(self) -> str:
        """The tenant's id."""
        return self.config.name

    # -- steps 1-6 ----------------------------------------------------------------------
    async def start(self) -> None:
        """Walk lifecycle steps 1-6 once; later calls do nothing.

        Raises:
            ConfigError: ``plugin_settings`` are invalid (the message names the tenant
                and the field) or an override path cannot be resolved.
            PluginError: the plugin returned components of the wrong kind.
        """
        if self._started:
            return
        tenant = self.tenant_id
        name = self.config.ecosystem
        overrides = load_overrides(tenant, self.config.plugin_settings)
        try:
            self._initialized = True
            self.plugin.initialize(dict(self.config.plugin_settings))  # step 1
        except pydantic.ValidationError as exc:
            message, where = _validation_message(tenant, exc)
            raise ConfigError(message, field=where) from exc
        handlers = dict(self.plugin.get_service_handlers())  # step 2
        for service_type, handler in handlers.items():
            if not isinstance(handler, ServiceHandler):
                raise PluginError(
                    f"plugin {name!r}: handler {service_type!r} is a "
                    f"{type(handler).__name__}, not a ServiceHandler",
                    plugin=name,
                )
        cost_input = self.plugin.get_cost_input()  # step 3
        if not isinstance(cost_input, CostInput):
            raise PluginError(f"plugin {name!r}: get_cost_input() is not a CostInput", plugin=name)
        metrics = self.plugin.get_metrics_source()  # step 4
        if metrics is not None and not isinstance(metrics, MetricsSource):
            raise PluginError(
                f"plugin {name!r}: get_metrics_source() is not a MetricsSource", plugin=name
            )
        module = self.plugin.get_storage_module()  # step 5
        if module is not None:
            if not isinstance(module, StorageModule):
                raise PluginError(
                    f"plugin {name!r}: get_storage_module() is not a StorageModule", plugin=name
                )
            await self.storage.register_modules([module])
        fallback = self.plugin.get_fallback_allocator()  # step 6
        if fallback is not None and not isinstance(fallback, CostAllocator):
            raise PluginError(
                f"plugin {name!r}: get_fallback_allocator() is not callable", plugin=name
            )
        self._dispatcher = Dispatcher(tenant, handlers, fallback, overrides)
        self._handlers = handlers
        self._cost_input = cost_input
        self._metrics = metrics
        self._storage_module = module
        self._fallback = fallback
        self._started = True
        log.info("tenant started", tenant_id=tenant, ecosystem=name, handlers=sorted(handlers))

    # -- step 9 -----------------------------------------------------------------------
    async def aclose(self) -> None:
        """Step 9: close the plugin. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._initialized:
            await self.plugin.close()

    # -- steps 7-8 ----------------------------------------------------------------------
    async def run(self, trigger: str = "schedule") -> RunSummary:
        """Run steps 7-8 for the dates that need work and record the run.

        An ordinary failure returns a summary with status ``failed`` and the error;
        committed dates stay committed and no date is half-written. Cancellation
        records status ``cancelled`` and re-raises.
        """
        async with self._lock:
            summary = RunSummary(
                run_id=uuid.uuid4().hex,
                tenant_id=self.tenant_id,
                trigger=trigger,
                started_at=self._clock(),
            )
            with structlog.contextvars.bound_contextvars(
                tenant_id=self.tenant_id, run_id=summary.run_id
            ):
                return await self._run_recorded(summary)

    async def _run_recorded(self, summary: RunSummary) -> RunSummary:
        recorded = False
        try:
            await self.storage.start_run(
                self.tenant_id, summary.run_id, summary.trigger, summary.started_at
            )
            recorded = True
            log.info("run started", trigger=summary.trigger)
            await self._record_late()
            async with asyncio.timeout(self.config.run_timeout_s):
                await self.start()
                await self._run(summary)
        except asyncio.CancelledError:
            summary.status = RunStatus.CANCELLED
            summary.error = "cancelled"
            await self._finish(summary, recorded)
            raise
        except TimeoutError:
            summary.status = RunStatus.FAILED
            summary.error = f"run timed out after {self.config.run_timeout_s:g} s"
        except Exception as exc:  # the tenant boundary: plugin code may raise anything
            summary.status = RunStatus.FAILED
            summary.error = f"{type(exc).__name__}: {exc}"
            summary.storage_failed = isinstance(exc, StorageError)
        await self._finish(summary, recorded)
        return summary

    async def _finish(self, summary: RunSummary, recorded: bool) -> None:
        summary.finished_at = self._clock()
        if summary.status is RunStatus.SUCCESS:
            log.info("run finished", **summary.counts())
        else:
            log.error("run failed", status=str(summary.status), error=summary.error)
        if not recorded:
            return
        try:
            await self._record(summary)
        except Exception as exc:  # recording the outcome must not mask it
            summary.storage_failed = True
            self._unrecorded.append(summary)
            log.exception("run not recorded", error=f"{type(exc).__name__}: {exc}")

    async def _record(self, summary: RunSummary) -> None:
        assert summary.finished_at is not None  # noqa: S101  (_finish set it)
        await self.storage.finish_run(
            summary.run_id,
            status=str(summary.status),
            finished_at=summary.finished_at,
            counts=summary.counts(),
            error=summary.error,
        )

    async def _record_late(self) -> None:
        """Record outcomes an earlier run could not write (e.g. the database was locked)."""
        pending, self._unrecorded = self._unrecorded, []
        for summary in pending:
            try:
                await self._record(summary)
            except Exception:  # still failing: try again at the next run
                self._unrecorded.append(summary)
            else:
                log.info("earlier run recorded late", earlier_run_id=summary.run_id)

    async def _run(self, summary: RunSummary) -> None:
        tenant = self.tenant_id
        cfg = self.config
        storage = self.storage
        win = datesel.window(
            self._clock().astimezone(dt.UTC).date(),
            cfg.lookback_days,
            cfg.cutoff_days,
            cfg.recalc_days,
        )
        requests = await storage.pending_reruns(tenant)
        reruns = datesel.rerun_dates(requests, win.last)
        first = min([win.first, *reruns])
        states = await storage.get_date_states(tenant, first, win.last + dt.timedelta(days=1))
        fetch = datesel.dates_to_fetch(win, states, reruns=reruns, settings_fp=self._settings_fp)
        window_days = len(win.days())
        emitted = EmitOutcome()
        if fetch:
            calculated = await self._calculate(
                summary, fetch, states=states, reruns=reruns, win=win, emitted=emitted
            )
            summary.dates_skipped = max(window_days - calculated, 0)
        else:
            summary.dates_skipped = window_days
            log.info("no dates need work")
        outcome = await emit_pending(
            tenant, storage, self.emitters, clock=self._clock, skip=emitted.attempted
        )
        emitted.add(outcome)
        summary.emitted = emitted.emitted
        summary.emit_failures = emitted.failed
        if requests:
            await storage.complete_reruns([r.request_id for r in requests], self._clock())

    async def _calculate(
        self,
        summary: RunSummary,
        fetch: list[dt.date],
        *,
        states: Mapping[dt.date, DateState],
        reruns: set[dt.date],
        win: datesel.DateWindow,
        emitted: EmitOutcome,
    ) -> int:
        """Fetch, decide and commit; return the number of dates calculated."""
        tenant = self.tenant_id
        assert self._dispatcher is not None  # noqa: S101  (start() ran)
        assert self._cost_input is not None  # noqa: S101
        shared = await self.plugin.build_shared_context(tenant)  # step 7
        inventory = await gather_inventory(
            tenant,
            self._handlers,
            shared,
            self.storage,
            seen_at=self._clock(),
            guard_ratio=self.config.deletion_guard_ratio,
            previous=self._inventory,
        )
        self._inventory = inventory
        resources = {r.resource_id: r for r in inventory.resources}
        identities = IdentitySet(inventory.identities)

        with young_collections_only():  # pages of rows make no cycles (gcpolicy)
            spool = await self._gather_billing(summary, fetch)
        billing_fps = {day: spool.fingerprint(day) for day in fetch}
        todo = datesel.dates_to_allocate(
            fetch,
            states,
            billing_fps=billing_fps,
            inventory_fp=inventory.fingerprint,
            settings_fp=self._settings_fp,
            reruns=reruns,
            win=win,
        )
        log.info("dates selected", fetched=len(fetch), to_allocate=len(todo))
        if not todo:
            return 0
        with young_collections_only():
            usage = await self._fetch_usage(spool.needs(todo), todo[0], todo[-1])
        notes = RunNotes()
        # Dates are committed and emitted by tasks while the next dates are
        # allocated. Two may be in flight: one writing, the next already encoded and
        # queued on the backend's write lock (first come, first served), so dates
        # still commit in order. With large dates the backend writes in a child
        # process, and allocation and SQLite use both cores.
        inflight: collections.deque[asyncio.Task[None]] = collections.deque()
        # Automatic collection is off for the whole loop (gcpolicy).
        with young_collections_only():
            try:
                for n, day in enumerate(todo, 1):
                    if n % _COLLECT_EVERY == 0:
                        collect_young()
                    with structlog.contextvars.bound_contextvars(date=day.isoformat()):
                        lines = spool.pop(day)  # a date's objects exist only while it is worked on
                        result = await self._allocate_sliced(
                            day,
                            lines,
                            identities=identities,
                            resources=resources,
                            usage=usage.pop(day),
                            notes=notes,
                        )
                        plugin_rows = (
                            self._storage_module.billing_rows(tenant, day, lines)
                            if self._storage_module is not None
                            else ()
                        )
                        if len(inflight) == _COMMITS_IN_FLIGHT:
                            await inflight.popleft()
                        inflight.append(
                            asyncio.create_task(
                                self._commit_and_emit(
                                    summary,
                                    day,
                                    lines=lines,
                                    result=result,
                                    plugin_rows=plugin_rows,
                                    billing_fp=billing_fps[day],
                                    inventory_fp=inventory.fingerprint,
                                    emitted=emitted,
                                )
                            )
                        )
                        # The commit's parameters are built now, still with automatic
                        # collection off; /metrics and the probes get a turn too.
                        await asyncio.sleep(0)
                while inflight:
                    await inflight.popleft()
            finally:
                if inflight:
                    await _settle(inflight)
        return len(todo)

    async def _commit_and_emit(
        self,
        summary: RunSummary,
        day: dt.date,
        *,
        lines: list[BillingLineItem],
        result: DateAllocation,
        plugin_rows: Sequence[PluginRows],
        billing_fp: str,
        inventory_fp: str,
        emitted: EmitOutcome,
    ) -> None:
        """Commit one allocated date (one transaction), then emit it."""
        tenant = self.tenant_id
        state = await self.storage.commit_date(
            tenant,
            day,
            lines=lines,
            rows=result.rows,
            plugin_rows=plugin_rows,
            billing_fingerprint=billing_fp,
            settings_fingerprint=self._settings_fp,
            inventory_fingerprint=inventory_fp,
            calculated_at=self._clock(),
        )
        summary.dates_calculated += 1
        summary.rows_written += len(result.rows)
        summary.unallocated += result.unallocated
        log.info(
            "date committed",
            lines=len(lines),
            rows=len(result.rows),
            calc_seq=state.calc_seq,
            allocator_errors=result.allocator_errors,
        )
        outcome = await emit_date(
            tenant,
            self.storage,
            self.emitters,
            day=day,
            calc_seq=state.calc_seq,
            rows=result.rows,
            clock=self._clock,
        )
        emitted.add(outcome)
        summary.emitted, summary.emit_failures = emitted.emitted, emitted.failed

    async def _allocate_sliced(
        self,
        day: dt.date,
        lines: list[BillingLineItem],
        *,
        identities: IdentitySet,
        resources: Mapping[str, Resource],
        usage: Mapping[MetricQuery, UsageTable],
        notes: RunNotes,
    ) -> DateAllocation:
        """Allocate a date in slices, yielding to the loop between them.

        Allocation is synchronous CPU work; a big date takes most of a second, and
        ``/metrics``, the probes and the signal handlers share this loop.
        """
        assert self._dispatcher is not None  # noqa: S101  (start() ran)
        dispatcher = self._dispatcher
        context = dispatcher.resolve_context(day, identities, resources)
        rows: list[ChargebackRow] = []
        unallocated = errors = 0
        for i in range(0, max(len(lines), 1), _ALLOCATION_SLICE):
            part = dispatcher.allocate_date(
                day,
                lines[i : i + _ALLOCATION_SLICE],
                identities=identities,
                resources=resources,
                usage=usage,
                notes=notes,
                context=context,
            )
            rows.extend(part.rows)
            unallocated += part.unallocated
            errors += part.allocator_errors
            await asyncio.sleep(0)
        return DateAllocation(rows=rows, unallocated=unallocated, allocator_errors=errors)

    async def _gather_billing(self, summary: RunSummary, fetch: list[dt.date]) -> LineSpool:
        assert self._cost_input is not None  # noqa: S101  (start() ran)
        assert self._dispatcher is not None  # noqa: S101
        wanted = set(fetch)
        spool = LineSpool(self._dispatcher.metric_queries)
        for start, end in datesel.spans(fetch):
            async for line in self._cost_input.gather(self.tenant_id, start, end):
                summary.lines_read += 1
                if line.date in wanted:
                    spool.add(line)
        spool.finish()
        return spool

    async def _fetch_usage(
        self, needed: Mapping[MetricQuery, set[str]], first: dt.date, last: dt.date
    ) -> UsageSpool:
        usage = UsageSpool()
        if not needed:
            return usage
        if self._metrics is None:
            log.warning("usage needed but the plugin has no metrics source", queries=len(needed))
            return usage
        end = last + dt.timedelta(days=1)
        for query in sorted(needed, key=lambda q: (q.key, q.metric)):
            usage.add(query, await self._metrics.fetch(query, sorted(needed[query]), first, end))
        return usage


async def _settle(commits: collections.deque[asyncio.Task[None]]) -> None:
    """Finish the commits in flight when the loop over dates stops early.

    On an error (say the next date's allocator failed) they go on: their dates were
    allocated correctly and are kept. On cancellation (run timeout, shutdown) they are
    cancelled too; the backend still lets a started transaction finish, whole.
    """
    current = asyncio.current_task()
    cancelling = current is not None and current.cancelling() > 0
    while commits:
        commit = commits.popleft()
        if cancelling:
            commit.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(commit)
        if commit.done() and not commit.cancelled() and commit.exception() is not None:
            log.error("date commit failed", error=str(commit.exception()))
