"""The daemon's tenants and their run tasks (STYLE habit 5: own your tasks).

:class:`TenantPool` holds one :class:`~chargeback.core.engine.orchestrator.TenantRuntime`
per enabled tenant and every run task, in a dict keyed by run key. A done callback
reaps each task and surfaces a crash; a tenant never runs twice at once (requests
that arrive while it runs are coalesced into one run that starts right after the
current one: never lost), at most ``max_concurrent`` tenants run together, and one
tenant's failure is logged and counted without touching the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary
from chargeback.core.models import ChargebackRow
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.ownership.rules import compile_rules
from chargeback.core.plugin.protocols import Emitter
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.unattributed import unattributed_cost
from chargeback.errors import ChargebackError
from chargeback.service.metrics import ServiceMetrics
from chargeback.settings import AppSettings

__all__ = ["CountingEmitter", "RunGate", "TenantPool"]

log = structlog.get_logger(__name__)

_CANCEL_WAIT_S = 3.0
"""After the grace period, how long cancelled runs get to record themselves as cancelled."""

_SAFETY_MARGIN_S = 60.0
"""The engine bounds each run itself; the pool's own timeout is this much later."""


@dataclass(slots=True)
class _Tenant:
    """A configured tenant: its runtime, schedule and current run."""

    name: str
    schedule: str
    runtime: TenantRuntime
    task: asyncio.Task[RunSummary | None] | None = None
    queued: str | None = None
    """The trigger of a run requested while this one runs (it starts right after)."""

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class RunGate(Protocol):
    """Protocol: who may run a tenant now (replicas: its lease, DESIGN §18)."""

    async def claim(self, tenant_id: str) -> bool:
        """Whether this process may run the tenant now (then :meth:`release` after)."""
        ...

    async def release(self, tenant_id: str) -> None:
        """The run is over."""
        ...


class CountingEmitter:
    """Wraps an emitter to count its outcomes in ``chargeback_emits_total``."""

    def __init__(
        self,
        name: str,
        inner: Emitter,
        metrics: ServiceMetrics,
        on_emit: Callable[[], None] | None = None,
    ) -> None:
        self._name, self._inner, self._metrics = name, inner, metrics
        self._on_emit = on_emit

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        """Emit, and count success or failure."""
        try:
            await self._inner(tenant_id, day, rows)
        except Exception:
            self._metrics.emitted(self._name, ok=False)
            raise
        self._metrics.emitted(self._name, ok=True)
        if self._on_emit is not None:
            self._on_emit()


class TenantPool:
    """The tenants of one daemon and their runs.

    Args:
        storage: the open storage backend.
        plugins: where tenants' plugins come from.
        emitters: every committed date goes to these.
        metrics: the daemon's metrics.
        max_concurrent: bound on tenants running at once.
        context: the context run tasks start from (holds the telemetry hook).
        after_run: awaited after every finished run (the daemon refreshes the
            prometheus snapshot there).
        gate: claimed before each run and released after (replicas' leases); a
            tenant it refuses is skipped.
    """

    def __init__(
        self,
        storage: StorageBackend,
        plugins: PluginRegistry,
        emitters: Sequence[NamedEmitter],
        metrics: ServiceMetrics,
        *,
        max_concurrent: int,
        context: contextvars.Context,
        after_run: Callable[[], Awaitable[None]] | None = None,
        gate: RunGate | None = None,
    ) -> None:
        self._storage = storage
        self._plugins = plugins
        self._emitters = tuple(emitters)
        self._metrics = metrics
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._context = context
        self._after_run = after_run
        self._gate = gate
        self._tenants: dict[str, _Tenant] = {}
        self._retired: list[_Tenant] = []
        self.tasks: dict[str, asyncio.Task[RunSummary | None]] = {}
        self.accepting_runs = True
        self.counters = {"runs_ok": 0, "runs_failed": 0, "runs_queued": 0}
        self.storage_problem: str | None = None
        """The last run's database failure, until a run succeeds again (for /readyz)."""

    def __len__(self) -> int:
        return len(self._tenants)

    def names(self) -> list[str]:
        """Return the tenants' names, sorted."""
        return sorted(self._tenants)

    def running_names(self) -> list[str]:
        """Return the names of the tenants running now, sorted."""
        return sorted(t.name for t in self._tenants.values() if t.running)

    def schedule_of(self, name: str) -> str:
        """Return the cron expression of tenant ``name``."""
        return self._tenants[name].schedule

    # -- membership ---------------------------------------------------------------------
    async def add(self, name: str, settings: AppSettings) -> bool:
        """Create and start tenant ``name``'s runtime; return whether it was added.

        A plugin that cannot be created is logged and the tenant left out; a start-up
        failure is logged and retried by each run (the runtime starts lazily).
        """
        config = settings.tenant_config(name)
        try:
            plugin = self._plugins.create(config.ecosystem)
        except ChargebackError as exc:
            log.error("tenant not loaded", tenant_id=name, error=str(exc))  # noqa: TRY400  (expected; the message says it all)
            self._metrics.run_aborted(name, 0.0, status="failed")
            return False
        attributor = self._attributor(name, settings)
        self._metrics.budgets.configure(settings.budgets)
        runtime = TenantRuntime(
            config, plugin, self._storage, self._emitters, attributor=attributor
        )
        self._tenants[name] = _Tenant(name, settings.tenant_schedule(name), runtime)
        self._metrics.tenant_added(name)
        try:
            await runtime.start()
        except ChargebackError as exc:
            log.error("tenant start failed", tenant_id=name, error=str(exc))  # noqa: TRY400  (expected; the message says it all)
        await self._restore_metrics(name)
        return True

    def _attributor(self, name: str, settings: AppSettings) -> Attributor | None:
        try:
            store = ownership_store(self._storage)
        except TypeError as exc:
            log.warning("ownership attribution unavailable", tenant_id=name, error=str(exc))
            return None
        return Attributor(name, compile_rules(settings.ownership, name), store, self._storage)

    async def apply_ownership(self, old: AppSettings, new: AppSettings) -> list[str]:
        """Give every tenant the new ownership rules; re-attribute those whose rules changed.

        The team budgets are taken from ``new`` too, and every tenant's re-evaluated.
        Returns the tenants re-attributed (their changed dates re-emitted).
        """
        self._metrics.budgets.configure(new.budgets)
        done: list[str] = []
        for name, tenant in list(self._tenants.items()):
            attributor = tenant.runtime.attributor
            if attributor is None:
                continue
            rules = compile_rules(new.ownership, name)
            replaced = attributor.replace_rules(rules)
            if not replaced and compile_rules(old.ownership, name).fingerprint == rules.fingerprint:
                continue
            try:
                await tenant.runtime.reattribute()
            except ChargebackError as exc:
                log.error("re-attribution failed", tenant_id=name, error=str(exc))  # noqa: TRY400  (expected; the message says it all)
                continue
            done.append(name)
        for name in self._tenants:  # the new budgets, on the teams as now attributed
            try:
                await self._metrics.budgets.refresh(self._storage, name)
            except ChargebackError as exc:
                log.warning("budgets not re-evaluated", tenant_id=name, error=str(exc))
        if done and self._after_run is not None:
            await self._after_run()
        return done

    async def retire(self, name: str) -> None:
        """Remove tenant ``name``: no new runs, let its current run finish, close it."""
        tenant = self._tenants.pop(name, None)
        if tenant is None:
            return
        self._metrics.tenant_removed(name)
        self._retired.append(tenant)
        if tenant.task is not None and not tenant.task.done():
            await asyncio.wait([tenant.task])  # waiting never cancels the run itself
        await tenant.runtime.aclose()
        self._retired.remove(tenant)

    async def _restore_metrics(self, name: str) -> None:
        try:
            runs = await self._storage.list_runs(name, limit=50)
            ok = next((r for r in runs if r.status == "success" and r.finished_at), None)
            if ok is not None and ok.finished_at is not None:
                self._metrics.set_last_success(name, ok.finished_at.timestamp())
            await self._update_unallocated(name)
            await self._metrics.periods.refresh(self._storage, name)
            await self._metrics.budgets.refresh(self._storage, name)
        except ChargebackError as exc:
            log.warning("tenant metrics not restored", tenant_id=name, error=str(exc))

    async def _update_unallocated(self, name: str) -> None:
        latest = await self._storage.latest_calculated_date(name)
        if latest is None:
            return
        states = await self._storage.get_date_states(name, latest, latest + dt.timedelta(days=1))
        state = states.get(latest)
        if state is not None:
            self._metrics.set_unallocated(name, state.unallocated_total)
        day = await unattributed_cost(self._storage, name, latest, latest + dt.timedelta(days=1))
        self._metrics.set_unattributed(name, day.amount)

    async def last_success(self, name: str) -> dt.datetime | None:
        """Return when the tenant's last successful run started (from storage)."""
        runs = await self._storage.list_runs(name, limit=50)
        return next((r.started_at for r in runs if r.status == "success"), None)

    # -- runs -----------------------------------------------------------------------------
    def request_run(self, name: str, trigger: str) -> str | None:
        """Start a run of tenant ``name``; return its run key.

        While the tenant runs, the request is queued instead (None is returned): the
        requests that arrive during one run make one more run right after it.
        """
        tenant = self._tenants.get(name)
        if not self.accepting_runs or tenant is None:
            reason = "shutting down" if tenant is not None else "no such tenant"
            log.info("run not started", tenant_id=name, trigger=trigger, reason=reason)
            return None
        if tenant.running:
            if tenant.queued is None:
                self.counters["runs_queued"] += 1
                tenant.queued = trigger
            log.info("run queued: it starts when the current run ends", trigger=trigger)
            return None
        key = uuid.uuid4().hex[:12]
        task = asyncio.create_task(
            self._run(tenant, trigger), name=f"run:{name}:{key}", context=self._context.copy()
        )
        tenant.task = task
        self.tasks[key] = task
        task.add_done_callback(lambda t: self._reap(key, tenant, t))
        return key

    def queued(self, name: str) -> bool:
        """Whether a run of tenant ``name`` waits for its current run to end."""
        tenant = self._tenants.get(name)
        return tenant is not None and tenant.queued is not None

    def request_run_all(self, trigger: str) -> list[str]:
        """Start a run of every tenant that is not running; return the run keys."""
        keys = [self.request_run(name, trigger) for name in self.names()]
        return [k for k in keys if k is not None]

    def _reap(self, key: str, tenant: _Tenant, task: asyncio.Task[RunSummary | None]) -> None:
        self.tasks.pop(key, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # _run catches ordinary failures; this is a bug surfacing
            log.error("run task crashed", run_key=key, error=f"{type(exc).__name__}: {exc}")
        trigger, tenant.queued = tenant.queued, None
        if trigger is None:
            return
        if self._tenants.get(tenant.name) is tenant and self.accepting_runs:
            log.info("queued run starting", tenant_id=tenant.name, trigger=trigger)
            self.request_run(tenant.name, trigger)
        else:  # a rerun request stays pending in storage for the next start
            log.info("queued run dropped", tenant_id=tenant.name, reason="shutting down")

    async def _run(self, tenant: _Tenant, trigger: str) -> RunSummary | None:
        async with self._semaphore:
            if not self.accepting_runs:
                return None
            gate = self._gate
            if gate is None:
                return await self._run_claimed(tenant, trigger)
            try:
                claimed = await gate.claim(tenant.name)
            except ChargebackError as exc:
                log.warning("run not started", tenant_id=tenant.name, error=str(exc))
                return None
            if not claimed:
                self.counters["runs_skipped"] += 1
                log.info("run skipped", tenant_id=tenant.name, trigger=trigger,
                         reason="another replica holds the lease")  # fmt: skip
                return None
            try:
                return await self._run_claimed(tenant, trigger)
            finally:
                try:
                    await gate.release(tenant.name)
                except ChargebackError as exc:  # it expires on its own
                    log.warning("lease not released", tenant_id=tenant.name, error=str(exc))

    async def _run_claimed(self, tenant: _Tenant, trigger: str) -> RunSummary | None:
        name = tenant.name
        started = time.monotonic()
        self._metrics.running.inc()
        try:
            with structlog.contextvars.bound_contextvars(tenant_id=name):
                timeout = tenant.runtime.config.run_timeout_s + _SAFETY_MARGIN_S
                async with asyncio.timeout(timeout):
                    summary = await tenant.runtime.run(trigger)
        except TimeoutError:
            self.counters["runs_failed"] += 1
            self._metrics.run_aborted(name, time.monotonic() - started, status="timeout")
            log.error("run timed out", tenant_id=name)  # noqa: TRY400  (expected; no traceback needed)
            return None
        except asyncio.CancelledError:
            self._metrics.run_aborted(name, time.monotonic() - started, status="cancelled")
            raise
        except Exception:  # the tenant boundary: one tenant never stops the others
            self.counters["runs_failed"] += 1
            self._metrics.run_aborted(name, time.monotonic() - started, status="failed")
            log.exception("run crashed", tenant_id=name)
            return None
        finally:
            self._metrics.running.dec()
        self._metrics.run_finished(summary, time.monotonic() - started, status=str(summary.status))
        ok = summary.status is RunStatus.SUCCESS
        self.counters["runs_ok" if ok else "runs_failed"] += 1
        if summary.storage_failed:
            self.storage_problem = f"tenant {name}: {summary.error}"
        elif ok:
            self.storage_problem = None
        try:
            if summary.dates_calculated:
                await self._update_unallocated(name)
            await self._metrics.periods.refresh(self._storage, name)
            await self._metrics.budgets.refresh(self._storage, name)
            if self._after_run is not None:
                await self._after_run()
        except ChargebackError as exc:
            log.warning("metrics not refreshed", tenant_id=name, error=str(exc))
        return summary

    async def collect_usage(self) -> None:
        """Collect every tenant's recent usage into the ledger, one tenant at a time.

        A tenant's failure is logged and the next one goes on; a tenant that is running
        is waited for (its run collects too).
        """
        for name in self.names():
            tenant = self._tenants.get(name)
            if tenant is None or not self.accepting_runs:
                continue
            with structlog.contextvars.bound_contextvars(tenant_id=name):
                try:
                    await tenant.runtime.collect_usage()
                except Exception as exc:  # the tenant boundary: one tenant never stops the others
                    log.warning("usage collection failed", error=f"{type(exc).__name__}: {exc}")

    def cancel_all(self) -> int:
        """Cancel every running run at once; return how many."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        return len(tasks)

    # -- shutdown ---------------------------------------------------------------------------
    async def drain(self, grace_s: float) -> None:
        """Stop accepting runs, wait up to ``grace_s`` for running ones, cancel the rest."""
        self.accepting_runs = False
        tasks = list(self.tasks.values())
        if not tasks:
            return
        log.info("waiting for running tenants", running=len(tasks), grace_s=grace_s)
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        if pending:
            log.warning("cancelling running tenants", cancelled=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=_CANCEL_WAIT_S)

    async def aclose(self) -> None:
        """Close every tenant's runtime (plugin.close). Idempotent."""
        self.accepting_runs = False
        for tenant in [*self._tenants.values(), *self._retired]:
            try:
                await tenant.runtime.aclose()
            except Exception:  # a plugin's close must not stop the others' close
                log.exception("tenant close failed", tenant_id=tenant.name)
        self._tenants.clear()
        self._retired.clear()
