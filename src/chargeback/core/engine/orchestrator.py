"""The per-tenant lifecycle (seed "Lifecycle" steps 1-9; DESIGN §3, §4).

:class:`TenantRuntime` owns one tenant's plugin instance: :meth:`~TenantRuntime.start`
walks steps 1-6 once, :meth:`~TenantRuntime.run` does step 7 and step 8 for the dates
that need work, :meth:`~TenantRuntime.aclose` is step 9.

One run::

    pending reruns -> candidate dates (no candidates: no API call at all)
    -> shared context -> inventory (once, with the deletion guard)
    -> per chunk of at most 30 days of candidates, oldest first:
         billing of the chunk -> its dates whose inputs changed
         -> usage of resources not asked for yet this run (one fetch per metric
            query, up to the last candidate date)
         -> per date, oldest first: allocate -> commit (one transaction) -> emit,
            while the next chunk's billing downloads
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
CHUNK_DAYS = 30
"""Days of billing per chunk of a run: the next chunk downloads while this one is
allocated and written (the Confluent billing API answers at most a month a query)."""
_COLLECT_EVERY = 8
"""Dates allocated between two collections of the young generations (see gcpolicy)."""
_RESOURCES_PER_FETCH = 50
"""Resources whose usage is fetched together (all their queries at once, then the next ones)."""
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
        chunk_days: the most days of billing downloaded, decided and allocated as one
            chunk (see :meth:`_calculate`).
    """

    def __init__(
        self,
        config: TenantConfig,
        plugin: EcosystemPlugin,
        storage: StorageBackend,
        emitters: Sequence[NamedEmitter] = (),
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
        chunk_days: int = CHUNK_DAYS,
    ) -> None:
        if chunk_days < 1:
            raise ValueError(f"chunk_days must be at least 1, got {chunk_days}")
        self.config = config
        self.plugin = plugin
        self.storage = storage
        self.emitters = tuple(emitters)
        self._clock = clock
        self._chunk_days = chunk_days
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

        # The run goes chunk by chunk (at most chunk_days of billing each). A chunk's
        # usage is fetched for its billed resources over the whole rest of the run,
        # once per query and resource (the API economy of DESIGN §10: later chunks
        # only ask for resources not seen before). While a chunk's dates are
        # allocated and written (the writer child is busy then), the next chunk's
        # billing downloads on the same loop: the download no longer leaves the
        # second core idle. A chunk's dates are complete and independent, so a
        # failure in a later chunk keeps the dates already committed.
        chunks = _chunks(fetch, self._chunk_days)
        spool = LineSpool(self._dispatcher.metric_queries)
        usage = UsageSpool()
        asked: dict[MetricQuery, set[str]] = {}
        notes = RunNotes()
        calculated = 0
        # Dates are committed and emitted by tasks while the next dates are
        # allocated. Two may be in flight: one writing, the next already encoded and
        # queued on the backend's write lock (first come, first served), so dates
        # still commit in order. With large dates the backend writes in a child
        # process, and allocation and SQLite use both cores.
        inflight: collections.deque[asyncio.Task[None]] = collections.deque()
        download: asyncio.Task[None] | None = asyncio.create_task(
            self._gather_billing(summary, spool, *chunks[0])
        )
        # Automatic collection is off for the whole loop (gcpolicy).
        with young_collections_only():
            try:
                for n, (start, end, days) in enumerate(chunks, 1):
                    assert download is not None  # noqa: S101  (one per chunk)
                    await download
                    download = None
                    billing_fps, todo = await self._decide(
                        spool, usage, asked, (start, end, days), last=fetch[-1],
                        states=states, reruns=reruns, win=win, inventory_fp=inventory.fingerprint,
                    )  # fmt: skip
                    if n < len(chunks):
                        download = asyncio.create_task(
                            self._gather_billing(summary, spool, *chunks[n])
                        )
                    for day in todo:
                        calculated += 1
                        if calculated % _COLLECT_EVERY == 0:
                            collect_young()
                        with structlog.contextvars.bound_contextvars(date=day.isoformat()):
                            lines = spool.pop(day)  # a date's objects exist only while worked on
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
                    for day in days:
                        spool.discard(day)  # dates left unchanged: forget their lines
                while inflight:
                    await inflight.popleft()
            finally:
                if download is not None:
                    download.cancel()
                    # gather: a cancellation of this task itself still propagates.
                    await asyncio.gather(download, return_exceptions=True)
                if inflight:
                    await _settle(inflight)
        return calculated

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

    async def _decide(
        self,
        spool: LineSpool,
        usage: UsageSpool,
        asked: dict[MetricQuery, set[str]],
        chunk: tuple[dt.date, dt.date, list[dt.date]],
        *,
        last: dt.date,
        states: Mapping[dt.date, DateState],
        reruns: set[dt.date],
        win: datesel.DateWindow,
        inventory_fp: str,
    ) -> tuple[dict[dt.date, str], list[dt.date]]:
        """Once a chunk's billing is in: its dates' digests, the dates whose inputs
        changed, and the usage they need that was not fetched yet (up to ``last``)."""
        start, end, days = chunk
        spool.finish()
        billing_fps = {day: spool.fingerprint(day) for day in days}
        todo = datesel.dates_to_allocate(
            days,
            states,
            billing_fps=billing_fps,
            inventory_fp=inventory_fp,
            settings_fp=self._settings_fp,
            reruns=reruns,
            win=win,
        )
        log.info("dates selected", fetched=len(days), to_allocate=len(todo), chunk=f"{start}/{end}")
        if todo:
            await self._fetch_new_usage(usage, asked, spool.needs(todo), todo[0], last)
        return billing_fps, todo

    async def _gather_billing(
        self,
        summary: RunSummary,
        spool: LineSpool,
        start: dt.date,
        end: dt.date,
        days: Sequence[dt.date],
    ) -> None:
        """Download the billing of ``start <= day < end`` into ``spool`` (``days`` only)."""
        assert self._cost_input is not None  # noqa: S101  (start() ran)
        wanted = set(days)
        with young_collections_only():  # pages of rows make no cycles (gcpolicy)
            async for line in self._cost_input.gather(self.tenant_id, start, end):
                summary.lines_read += 1
                if line.date in wanted:
                    spool.add(line)

    async def _fetch_new_usage(
        self,
        usage: UsageSpool,
        asked: dict[MetricQuery, set[str]],
        needed: Mapping[MetricQuery, set[str]],
        first: dt.date,
        last: dt.date,
    ) -> None:
        """Fetch the usage of the resources in ``needed`` not asked for yet this run."""
        new = {q: ids - asked.get(q, set()) for q, ids in needed.items()}
        new = {q: ids for q, ids in new.items() if ids}
        for query, ids in new.items():
            asked.setdefault(query, set()).update(ids)
        with young_collections_only():
            await self._fetch_usage(usage, new, first, last)

    async def _fetch_usage(
        self,
        usage: UsageSpool,
        needed: Mapping[MetricQuery, set[str]],
        first: dt.date,
        last: dt.date,
    ) -> None:
        if not needed:
            return
        if self._metrics is None:
            log.warning("usage needed but the plugin has no metrics source", queries=len(needed))
            return
        end = last + dt.timedelta(days=1)
        queries = sorted(needed, key=lambda q: (q.key, q.metric))
        # A batch of resources at a time, the batch's queries together: the same
        # calls (one per query and resource), but the tables in memory hold one
        # batch's resources, not all of them, and a source that computes both byte
        # metrics of a cluster-day at once (the sim, a caching proxy) still has them.
        # Together, so the client keeps its requests in flight across the queries.
        metrics = self._metrics
        resources = sorted(set().union(*needed.values()))
        for i in range(0, len(resources), _RESOURCES_PER_FETCH):
            batch = set(resources[i : i + _RESOURCES_PER_FETCH])
            asks = [(q, sorted(needed[q] & batch)) for q in queries]
            asks = [(q, ids) for q, ids in asks if ids]
            # Every fetch finishes (none is left running) before the first error is raised.
            tables = await asyncio.gather(
                *(metrics.fetch(q, ids, first, end) for q, ids in asks), return_exceptions=True
            )
            for (query, _), table in zip(asks, tables, strict=True):
                if isinstance(table, BaseException):
                    raise table
                usage.add(query, table)


def _chunks(fetch: Sequence[dt.date], days: int) -> list[tuple[dt.date, dt.date, list[dt.date]]]:
    """Split the (sorted) fetch dates into ``(start, end, dates)`` chunks for billing.

    Each billing span (:func:`~chargeback.core.engine.dates.spans`) is cut into
    pieces of at most ``days`` days; a chunk holds the fetch dates of one piece.
    """
    wanted = set(fetch)
    out: list[tuple[dt.date, dt.date, list[dt.date]]] = []
    step = dt.timedelta(days=days)
    for span_start, span_end in datesel.spans(fetch):
        start = span_start
        while start < span_end:
            end = min(start + step, span_end)
            dates = [
                start + dt.timedelta(days=i)
                for i in range((end - start).days)
                if start + dt.timedelta(days=i) in wanted
            ]
            if dates:
                out.append((start, end, dates))
            start = end
    return out


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
