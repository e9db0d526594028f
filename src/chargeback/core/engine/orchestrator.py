"""The per-tenant lifecycle (seed "Lifecycle" steps 1-9; DESIGN §3, §4).

:class:`TenantRuntime` owns one tenant's plugin instance: :meth:`~TenantRuntime.start`
walks steps 1-6 once, :meth:`~TenantRuntime.run` does step 7 and step 8 for the dates
that need work, :meth:`~TenantRuntime.aclose` is step 9.

One run::

    pending reruns -> candidate dates (no candidates: no API call at all)
    -> shared context -> inventory (once, with the deletion guard)
    -> the date pipeline (pipeline.py): per chunk of at most 30 days of candidates,
       oldest first: gather billing -> detect the dates whose inputs changed (and
       prepare their usage) -> per date: allocate -> commit -> emit
    -> emit what earlier runs left pending, complete reruns, record the run
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence

import pydantic
import structlog

from chargeback.core.emitters.runner import EmitOutcome, emit_pending, finish_emitters
from chargeback.core.engine import dates as datesel
from chargeback.core.engine.allocation import Dispatcher
from chargeback.core.engine.inventory import Inventory, gather_inventory
from chargeback.core.engine.periods import sync_periods
from chargeback.core.engine.pipeline import DatePipeline, PipelineParts, RunPlan
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary, TenantConfig
from chargeback.core.engine.usage import UsageProvider
from chargeback.core.ledger.collect import collect_usage
from chargeback.core.ledger.provider import LedgerStats, LedgerUsage
from chargeback.core.ledger.records import UsagePolicy
from chargeback.core.money import to_decimal
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.plugin.overrides import load_overrides
from chargeback.core.plugin.protocols import (
    CostAllocator,
    CostInput,
    EcosystemPlugin,
    MetricsSource,
    ServiceHandler,
    StorageModule,
)
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import ConfigError, PluginError, StorageError

__all__ = ["TenantRuntime"]

log = structlog.get_logger(__name__)

CHUNK_DAYS = 30
"""Days of billing per chunk of a run: the next chunk downloads while this one is
allocated and written (the Confluent billing API answers at most a month a query)."""


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
            chunk (see :mod:`~chargeback.core.engine.pipeline`).
        attributor: the tenant's ownership step (teams of the committed rows).
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
        attributor: Attributor | None = None,
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
        self._usage_policy = UsagePolicy()
        self._storage_module: StorageModule | None = None
        self._fallback: CostAllocator | None = None
        self._dispatcher: Dispatcher | None = None
        self._settings_fp = datesel.settings_fingerprint(config.plugin_settings)
        self._unrecorded: list[RunSummary] = []
        self._inventory: Inventory | None = None
        self.attributor = attributor
        """Attributes committed dates to teams (DESIGN §14); ``None``: no ownership step."""

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
        policy = _usage_policy(self.plugin, name)
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
        self._usage_policy = policy
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

    async def reattribute(self) -> EmitOutcome:
        """Apply changed ownership rules now: re-attribute, then re-emit what changed.

        Waits for a running run (they share the lock); allocates nothing, calls no API.
        """
        outcome = EmitOutcome()
        if self.attributor is None:
            return outcome
        async with self._lock:
            with structlog.contextvars.bound_contextvars(tenant_id=self.tenant_id):
                await self.attributor.catch_up()
                outcome = await emit_pending(
                    self.tenant_id, self.storage, self.emitters, clock=self._clock
                )
        return outcome

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
            counts: dict[str, object] = dict(summary.counts())
            counts["unallocated"] = str(to_decimal(summary.unallocated))  # currency units
            counts["unattributed"] = str(to_decimal(summary.unattributed))
            # Refused lines are a warning: an amount the bill reported is not charged.
            (log.warning if summary.refused_lines else log.info)("run finished", **counts)
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

    async def collect_usage(self) -> LedgerStats | None:
        """Store the recent usage the ledger lacks (DESIGN §13); see
        :mod:`chargeback.core.ledger.collect`. Waits for a run in progress.

        Raises:
            ConfigError, PluginError: as :meth:`start`.
            SourceError, StorageError: the source or the storage failed.
        """
        async with self._lock:
            await self.start()
            with structlog.contextvars.bound_contextvars(tenant_id=self.tenant_id):
                return await self._collect()

    async def _collect(self) -> LedgerStats | None:
        assert self._dispatcher is not None  # noqa: S101  (start() ran)
        return await collect_usage(
            self.storage,
            self.tenant_id,
            self._dispatcher,
            self._metrics,
            self._usage_policy,
            clock=self._clock,
        )

    async def _collect_quietly(self) -> None:
        """Collect before a run's dates; a failure is logged and the run goes on (its
        dates fetch what they need themselves)."""
        try:
            await self._collect()
        except Exception as exc:  # a source or storage failure must not stop the run
            log.warning("usage collection failed", error=f"{type(exc).__name__}: {exc}")

    async def _run(self, summary: RunSummary) -> None:
        await self._collect_quietly()
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
            plan = RunPlan(fetch=fetch, states=states, reruns=reruns, win=win)
            calculated = await self._calculate(summary, plan, emitted)
            summary.dates_skipped = max(window_days - calculated, 0)
        else:
            summary.dates_skipped = window_days
            log.info("no dates need work")
        if self.attributor is not None:
            await self.attributor.catch_up()  # rule changes and unattributed dates
        _, periods = await sync_periods(tenant, storage, self.emitters, win=win, clock=self._clock)
        emitted.add(periods)
        outcome = await emit_pending(
            tenant, storage, self.emitters, clock=self._clock, skip=emitted.attempted
        )
        emitted.add(outcome)
        emitted.add(await finish_emitters(tenant, self.emitters))
        summary.emitted = emitted.emitted
        summary.emit_failures = emitted.failed
        if requests:
            await storage.complete_reruns([r.request_id for r in requests], self._clock())
        # No collection after the dates: the run's usage provider stored the recent days
        # of the resources they bill (LedgerUsage.prepare), which on a first run are
        # the ones the collection above had no billing to find.

    def usage_for_run(self) -> UsageProvider:
        """The usage seam: where one run's dates get their usage (see engine/usage.py).

        The usage ledger (DESIGN §13): a :class:`LedgerUsage` reading stored usage and
        fetching from the plugin's metrics source only the cells it lacks inside the
        source's retention.
        """
        return LedgerUsage(
            self.storage, self.tenant_id, self._metrics, self._usage_policy, clock=self._clock
        )

    async def _calculate(self, summary: RunSummary, plan: RunPlan, emitted: EmitOutcome) -> int:
        """Steps 7-8 for the dates of ``plan``; return the number of dates calculated."""
        assert self._dispatcher is not None  # noqa: S101  (start() ran)
        assert self._cost_input is not None  # noqa: S101
        shared = await self.plugin.build_shared_context(self.tenant_id)  # step 7
        self._inventory = await gather_inventory(
            self.tenant_id,
            self._handlers,
            shared,
            self.storage,
            seen_at=self._clock(),
            guard_ratio=self.config.deletion_guard_ratio,
            previous=self._inventory,
        )
        parts = PipelineParts(
            tenant_id=self.tenant_id,
            storage=self.storage,
            emitters=self.emitters,
            dispatcher=self._dispatcher,
            cost_input=self._cost_input,
            storage_module=self._storage_module,
            settings_fp=self._settings_fp,
            clock=self._clock,
            chunk_days=self._chunk_days,
            attributor=self.attributor,
        )
        pipeline = DatePipeline(
            parts,
            plan,
            inventory=self._inventory,
            usage=self.usage_for_run(),
            summary=summary,
            emitted=emitted,
        )
        return await pipeline.run()  # step 8


def _usage_policy(plugin: EcosystemPlugin, name: str) -> UsagePolicy:
    """The plugin's :class:`UsagePolicy` (optional ``get_usage_policy()``; default: no
    retention known, lines with unavailable usage split evenly)."""
    getter = getattr(plugin, "get_usage_policy", None)
    if getter is None:
        return UsagePolicy(source=name)
    policy = getter()
    if not isinstance(policy, UsagePolicy):
        raise PluginError(
            f"plugin {name!r}: get_usage_policy() returned {type(policy).__name__}, "
            "not a UsagePolicy",
            plugin=name,
        )
    return policy
