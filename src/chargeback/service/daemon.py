"""The daemon: one object that owns the whole lifecycle (DESIGN §9, STYLE habits 3-6).

::

    Daemon.run()                         sync entry point: asyncio.run(async_run())
      async_run()
        start()        AsyncExitStack:  pid file, storage, emitters (+ prometheus collector),
                                        tenant runtimes, HTTP server, scheduler, signals,
                                        heartbeat; then runs tenants that missed a run
        wait           until SIGTERM / SIGINT (or stop())
        aclose()       stop accepting runs, drain running tenants for shutdown_grace_s,
                       cancel the rest, close everything in reverse order. Idempotent.

Signals are installed inside the running loop (``loop.add_signal_handler``) and the
handlers stay synchronous: SIGUSR1 runs every tenant now, SIGHUP reloads the settings
file, SIGTERM/SIGINT stop gracefully (a second one cancels running tenants at once).

Every tenant run is a task the daemon owns, in a dict keyed by run key; a done
callback reaps it and surfaces its failure. One tenant never runs twice at once, and
at most ``max_concurrent_tenants`` run together. ``Daemon.run_once`` is the same
machinery without scheduler, HTTP and signals (``chargeback once``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import os
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.emitters.prometheus import PrometheusEmitter
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary
from chargeback.core.models import ChargebackRow
from chargeback.core.plugin.protocols import Emitter
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.core.telemetry import set_telemetry
from chargeback.errors import ChargebackError, ConfigError
from chargeback.logging import configure_logging, register_secrets
from chargeback.service.heartbeat import Heartbeat, write_heartbeat
from chargeback.service.http import HttpServer, make_app
from chargeback.service.metrics import ServiceMetrics
from chargeback.service.scheduling import missed_run
from chargeback.settings import (
    AppSettings,
    changed_tenants,
    cron_trigger,
    load_settings,
    restart_only_changes,
    secret_values,
    validate_settings,
)

__all__ = ["Daemon", "DaemonState"]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class DaemonState(StrEnum):
    """Where the daemon is in its lifecycle."""

    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CLOSED = "closed"


@dataclass(slots=True)
class _Tenant:
    """A configured tenant: its runtime and its current run."""

    name: str
    schedule: str
    runtime: TenantRuntime
    task: asyncio.Task[RunSummary | None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class _CountingEmitter:
    """Wraps an emitter to count its outcomes in ``chargeback_emits_total``."""

    def __init__(self, name: str, inner: Emitter, metrics: ServiceMetrics) -> None:
        self._name, self._inner, self._metrics = name, inner, metrics

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        try:
            await self._inner(tenant_id, day, rows)
        except Exception:
            self._metrics.emitted(self._name, ok=False)
            raise
        self._metrics.emitted(self._name, ok=True)


class Daemon:
    """The chargeback service. Touches neither the loop nor signals in ``__init__``.

    Args:
        settings: validated settings.
        settings_path: the file SIGHUP re-reads (``None``: reload re-reads the environment).
        handle_signals: install signal handlers (off for tests and embedding).
        plugins: a plugin registry (default: discovered from ``settings.plugins_path``).
        clock: the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        settings: AppSettings,
        *,
        settings_path: Path | None = None,
        handle_signals: bool = True,
        plugins: PluginRegistry | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.settings_path = settings_path
        self.handle_signals = handle_signals
        self.state = DaemonState.CREATED
        self.accepting_runs = False
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry)
        self.counters = {"runs_ok": 0, "runs_failed": 0, "runs_skipped": 0}
        self.http: HttpServer | None = None
        self.storage: SQLiteBackend | None = None
        self._plugins = plugins
        self._clock = clock
        self._tenants: dict[str, _Tenant] = {}
        self._retired: list[_Tenant] = []
        self._tasks: dict[str, asyncio.Task[RunSummary | None]] = {}
        self._aux: set[asyncio.Task[None]] = set()
        self._emitters: list[NamedEmitter] = []
        self._prometheus: list[PrometheusEmitter] = []
        self._scheduler: AsyncIOScheduler | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._stop: asyncio.Event | None = None
        self._stack: AsyncExitStack | None = None
        self._context: contextvars.Context | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._heartbeat_at: float | None = None
        self._last_summary = ""
        self._serving = False

    # -- entry points ---------------------------------------------------------------------
    def run(self) -> int:
        """Run the daemon until a stop signal; return the exit status (0)."""
        asyncio.run(self.async_run())
        return 0

    async def async_run(self) -> None:
        """Start, serve until stopped, and always close."""
        try:
            await self.start()
            await self._need(self._stop).wait()
        finally:
            await self.aclose()

    async def run_once(self, tenants: Sequence[str] | None = None) -> list[RunSummary]:
        """Run ``tenants`` (default: every enabled tenant) once; return their summaries.

        Raises:
            ConfigError: a named tenant is not configured or not enabled.
        """
        names = list(tenants) if tenants else self.settings.enabled_tenants()
        unknown = [n for n in names if n not in self.settings.enabled_tenants()]
        if unknown:
            known = ", ".join(self.settings.enabled_tenants()) or "(none)"
            raise ConfigError(
                f"unknown or disabled tenant(s): {', '.join(unknown)}; enabled: {known}",
                field="tenants",
            )
        try:
            await self._open_core(names)
            self.accepting_runs = True
            self.state = DaemonState.RUNNING
            keys = [self.request_run(n, "once") for n in names]
            tasks = [self._tasks[k] for k in keys if k is not None]
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await self.aclose()
        summaries: list[RunSummary] = []
        for name, result in zip(names, results, strict=True):
            if isinstance(result, RunSummary):
                summaries.append(result)
            else:
                summaries.append(
                    RunSummary(
                        run_id="-",
                        tenant_id=name,
                        trigger="once",
                        started_at=self._clock(),
                        status=RunStatus.FAILED,
                        error="run did not finish (see log)",
                    )
                )
        return summaries

    # -- start-up -------------------------------------------------------------------------
    async def _open_core(self, tenants: Sequence[str]) -> None:
        """Open storage, emitters and tenant runtimes onto a fresh exit stack."""
        self.state = DaemonState.STARTING
        self._stop = asyncio.Event()
        self._stack = stack = AsyncExitStack()
        s = self.settings
        register_secrets(secret_values(s))
        self._semaphore = asyncio.Semaphore(s.scheduling.max_concurrent_tenants)
        set_telemetry(self.metrics)
        self._context = contextvars.copy_context()

        s.storage.path.parent.mkdir(parents=True, exist_ok=True)
        storage = SQLiteBackend(s.storage.path)
        await storage.open()
        self.storage = storage
        stack.push_async_callback(storage.close)

        for em in s.emitters:
            emitter = emitter_registry.create(em.type, em.params, storage_backend=storage)
            if isinstance(emitter, PrometheusEmitter):
                emitter.set_tenants(s.enabled_tenants())
                self.registry.register(emitter)
                stack.callback(self.registry.unregister, emitter)
                self._prometheus.append(emitter)
                await emitter.refresh()
            self._emitters.append(
                NamedEmitter(em.name, _CountingEmitter(em.name, emitter, self.metrics))
            )

        if self._plugins is None:
            self._plugins = PluginRegistry.discover(s.plugins_path)
        stack.push_async_callback(self._close_tenants)
        for name in tenants:
            await self._add_tenant(name, s)

    async def start(self) -> None:
        """Acquire everything, start serving and scheduling.

        Raises:
            ConfigError: an emitter or the settings could not be set up.
            StorageError: the database could not be opened.
            OSError: the HTTP port could not be bound.
        """
        s = self.settings
        self._write_pid(s.daemon.pid_file)
        try:
            await self._open_core(s.enabled_tenants())
        finally:
            if self._stack is not None:
                self._stack.callback(self._remove_pid, s.daemon.pid_file)
        stack = self._need(self._stack)

        if s.http.enabled:
            self.http = HttpServer(make_app(self.registry, self), s.http.host, s.http.port)
            await self.http.start()
            stack.push_async_callback(self.http.aclose)

        self._scheduler = AsyncIOScheduler(
            event_loop=asyncio.get_running_loop(),
            timezone=dt.UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": s.scheduling.misfire_grace_s,
            },
        )
        self._scheduler.start()
        stack.callback(self._shutdown_scheduler)
        for tenant in self._tenants.values():
            self._schedule(tenant)

        if self.handle_signals:
            self._install_signals()
            stack.callback(self._remove_signals)

        self.accepting_runs = True
        self.state = DaemonState.RUNNING
        self._serving = True
        self._beat()
        beat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        stack.push_async_callback(self._cancel, beat)
        log.info(
            "daemon started",
            pid=os.getpid(),
            tenants=len(self._tenants),
            http=f"{s.http.host}:{self.http.port}" if self.http else None,
        )
        if s.scheduling.run_missed_on_startup:
            await self._run_missed()

    async def _add_tenant(self, name: str, settings: AppSettings) -> None:
        """Create and start a tenant's runtime; a failure is logged and retried at its runs."""
        config = settings.tenant_config(name)
        storage, plugins = self._need(self.storage), self._need(self._plugins)
        try:
            plugin = plugins.create(config.ecosystem)
        except ChargebackError as exc:
            log.error("tenant not loaded", tenant_id=name, error=str(exc))  # noqa: TRY400  (expected; the message says it all)
            self.metrics.run_aborted(name, 0.0, status="failed")
            return
        runtime = TenantRuntime(config, plugin, storage, self._emitters)
        tenant = _Tenant(name, settings.tenant_schedule(name), runtime)
        self._tenants[name] = tenant
        self.metrics.tenant_added(name)
        try:
            await runtime.start()
        except ChargebackError as exc:
            log.error("tenant start failed", tenant_id=name, error=str(exc))  # noqa: TRY400  (expected; the message says it all)
        await self._restore_tenant_metrics(name)

    async def _restore_tenant_metrics(self, name: str) -> None:
        try:
            runs = await self._need(self.storage).list_runs(name, limit=50)
            ok = next((r for r in runs if r.status == "success" and r.finished_at), None)
            if ok is not None and ok.finished_at is not None:
                self.metrics.set_last_success(name, ok.finished_at.timestamp())
            await self._update_unallocated(name)
        except ChargebackError as exc:
            log.warning("tenant metrics not restored", tenant_id=name, error=str(exc))

    async def _update_unallocated(self, name: str) -> None:
        storage = self._need(self.storage)
        latest = await storage.latest_calculated_date(name)
        if latest is None:
            return
        states = await storage.get_date_states(name, latest, latest + dt.timedelta(days=1))
        state = states.get(latest)
        if state is not None:
            self.metrics.set_unallocated(name, state.unallocated_total)

    async def _run_missed(self) -> None:
        """Run each tenant whose last success is older than its latest scheduled time."""
        storage = self._need(self.storage)
        now = self._clock()
        for tenant in list(self._tenants.values()):
            try:
                runs = await storage.list_runs(tenant.name, limit=50)
            except ChargebackError as exc:
                log.warning("run history unreadable", tenant_id=tenant.name, error=str(exc))
                continue
            last = next((r.started_at for r in runs if r.status == "success"), None)
            if missed_run(tenant.schedule, last, now):
                log.info("missed run", tenant_id=tenant.name, last_success=last)
                self.request_run(tenant.name, "missed")

    # -- scheduling -------------------------------------------------------------------------
    def _schedule(self, tenant: _Tenant) -> None:
        scheduler = self._need(self._scheduler)
        trigger = cron_trigger(tenant.schedule, jitter_s=self.settings.scheduling.jitter_s)
        scheduler.add_job(
            self._scheduled_run,
            trigger,
            args=[tenant.name],
            id=f"tenant:{tenant.name}",
            name=f"run {tenant.name}",
            replace_existing=True,
        )

    def _unschedule(self, name: str) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.remove_job(f"tenant:{name}")

    async def _scheduled_run(self, name: str) -> None:
        """APScheduler job: start the tenant's run and return (the run is our task)."""
        self.request_run(name, "schedule")

    def _shutdown_scheduler(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    # -- runs -------------------------------------------------------------------------------
    def request_run(self, name: str, trigger: str) -> str | None:
        """Start a run of tenant ``name`` unless it is running; return the run key or None."""
        tenant = self._tenants.get(name)
        if not self.accepting_runs or tenant is None:
            log.info("run not started", tenant_id=name, trigger=trigger, reason="not accepting")
            return None
        if tenant.running:
            self.counters["runs_skipped"] += 1
            log.info("run skipped", tenant_id=name, trigger=trigger, reason="already running")
            return None
        key = uuid.uuid4().hex[:12]
        ctx = (self._context or contextvars.copy_context()).copy()
        task = asyncio.create_task(
            self._run_tenant(tenant, trigger), name=f"run:{name}:{key}", context=ctx
        )
        tenant.task = task
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._reap(key, t))
        return key

    def request_run_all(self, trigger: str) -> list[str]:
        """Start a run of every tenant that is not running; return the run keys."""
        keys = [self.request_run(name, trigger) for name in sorted(self._tenants)]
        return [k for k in keys if k is not None]

    def _reap(self, key: str, task: asyncio.Task[RunSummary | None]) -> None:
        self._tasks.pop(key, None)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # _run_tenant catches ordinary failures; this is a bug surfacing
            log.error("run task crashed", run_key=key, error=f"{type(exc).__name__}: {exc}")

    async def _run_tenant(self, tenant: _Tenant, trigger: str) -> RunSummary | None:
        name = tenant.name
        async with self._need(self._semaphore):
            if not self.accepting_runs:
                return None
            started = time.monotonic()
            self.metrics.running.inc()
            try:
                with structlog.contextvars.bound_contextvars(tenant_id=name):
                    # the engine bounds the run itself; this is the daemon's safety net
                    async with asyncio.timeout(tenant.runtime.config.run_timeout_s + 60):
                        summary = await tenant.runtime.run(trigger)
            except TimeoutError:
                self.counters["runs_failed"] += 1
                self.metrics.run_aborted(name, time.monotonic() - started, status="timeout")
                log.error("run timed out", tenant_id=name)  # noqa: TRY400  (expected; the message says it all)
                return None
            except asyncio.CancelledError:
                self.metrics.run_aborted(name, time.monotonic() - started, status="cancelled")
                raise
            except Exception:  # the tenant boundary: one tenant never stops the others
                self.counters["runs_failed"] += 1
                self.metrics.run_aborted(name, time.monotonic() - started, status="failed")
                log.exception("run crashed", tenant_id=name)
                return None
            finally:
                self.metrics.running.dec()
        elapsed = time.monotonic() - started
        self.metrics.run_finished(summary, elapsed, status=str(summary.status))
        ok = summary.status is RunStatus.SUCCESS
        self.counters["runs_ok" if ok else "runs_failed"] += 1
        if summary.dates_calculated:
            try:
                await self._update_unallocated(name)
            except ChargebackError as exc:
                log.warning("unallocated gauge not updated", tenant_id=name, error=str(exc))
        return summary

    # -- signals ----------------------------------------------------------------------------
    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.handle_stop_signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, self.handle_stop_signal, signal.SIGINT)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        loop.add_signal_handler(signal.SIGUSR1, self._on_usr1)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(sig)

    def _on_usr1(self) -> None:
        keys = self.request_run_all("signal")
        log.info("runs requested", signal="SIGUSR1", started=len(keys), tenants=len(self._tenants))

    def handle_stop_signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop accepting runs and let ``async_run`` drain; a second signal cancels runs."""
        running = len(self._tasks)
        if self._stop is not None and self._stop.is_set():
            log.warning("shutdown forced", signal=sig.name, cancelling=running)
            for task in list(self._tasks.values()):
                task.cancel()
            return
        log.info("shutdown requested", signal=sig.name, running=running)
        self.stop()

    def stop(self) -> None:
        """Ask the daemon to stop (what SIGTERM does)."""
        self.accepting_runs = False
        if self._stop is not None:
            self._stop.set()

    # -- reload -----------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Re-read the settings in a task (SIGHUP); a reload in progress runs once more after."""
        if self._reload_task is not None and not self._reload_task.done():
            self._reload_again = True
            return
        self._reload_task = asyncio.create_task(self._reload_loop(), name="reload")
        self._aux.add(self._reload_task)
        self._reload_task.add_done_callback(self._aux.discard)

    async def _reload_loop(self) -> None:
        while True:
            self._reload_again = False
            await self.reload()
            if not self._reload_again or not self.accepting_runs:
                return

    async def reload(self) -> bool:
        """Load the settings file again and apply tenant changes; return whether applied.

        A bad file is rejected with a log line and the old settings stay.
        """
        source = str(self.settings_path) if self.settings_path else "environment"
        try:
            new = load_settings(self.settings_path)
            await validate_settings(new, source, registry=self._plugins)
        except ConfigError as exc:
            log.error("settings reload rejected", error=str(exc), field=exc.field)  # noqa: TRY400  (expected; the message says it all)
            return False
        old = self.settings
        added, removed, changed = changed_tenants(old, new)
        restart = restart_only_changes(old, new)
        if restart:
            log.warning("settings need a restart to take effect", sections=restart)
        if new.logging != old.logging:
            configure_logging(new.logging.level, new.logging.format)
        register_secrets(secret_values(new))
        self.settings = new
        for prom in self._prometheus:
            prom.set_tenants(new.enabled_tenants())
        for name in [*removed, *changed]:
            await self._retire_tenant(name)
        for name in [*changed, *added]:
            await self._add_tenant(name, new)
            tenant = self._tenants.get(name)
            if tenant is not None and self._scheduler is not None:
                self._schedule(tenant)
        for name in sorted(set(old.enabled_tenants()) & set(new.enabled_tenants())):
            if name not in changed and old.tenant_schedule(name) != new.tenant_schedule(name):
                self._schedule(self._tenants[name])
        log.info("settings reloaded", added=added, removed=removed, changed=changed)
        return True

    async def _retire_tenant(self, name: str) -> None:
        """Unschedule a tenant, let its current run finish, close its runtime."""
        self._unschedule(name)
        tenant = self._tenants.pop(name, None)
        if tenant is None:
            return
        self.metrics.tenant_removed(name)
        self._retired.append(tenant)
        if tenant.task is not None and not tenant.task.done():
            await asyncio.wait([tenant.task])  # does not cancel the run if we are cancelled
        await tenant.runtime.aclose()
        self._retired.remove(tenant)

    # -- health -----------------------------------------------------------------------------
    def summary_line(self) -> str:
        """One line of counters, for the heartbeat and its log line."""
        c = self.counters
        return (
            f"tenants={len(self._tenants)} running={len(self._tasks)} "
            f"ok={c['runs_ok']} failed={c['runs_failed']} skipped={c['runs_skipped']}"
        )

    def health(self) -> dict[str, Any]:
        """Liveness details for ``/healthz``."""
        age = None
        if self._heartbeat_at is not None:
            age = round(time.monotonic() - self._heartbeat_at, 3)
        return {"state": str(self.state), "heartbeat_age_s": age, "summary": self.summary_line()}

    def readiness(self) -> list[str]:
        """Why the daemon is not ready for ``/readyz`` (empty: ready)."""
        reasons = []
        if self.state is not DaemonState.RUNNING:
            reasons.append(f"daemon is {self.state}")
        if self.storage is None:
            reasons.append("storage not open")
        if self._scheduler is None or not self._scheduler.running:
            reasons.append("scheduler not running")
        return reasons

    def _beat(self) -> None:
        self._heartbeat_at = time.monotonic()
        line = self.summary_line()
        beat = Heartbeat(self._clock(), os.getpid(), str(self.state), line)
        try:
            write_heartbeat(self.settings.daemon.heartbeat_file, beat)
        except OSError as exc:
            log.warning("heartbeat not written", error=str(exc))
        if line != self._last_summary:
            self._last_summary = line
            log.info("heartbeat", summary=line)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.daemon.heartbeat_interval_s)
            self._beat()

    # -- shutdown ---------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Drain running tenants (up to ``shutdown_grace_s``), then close all. Idempotent."""
        if self.state in (DaemonState.CLOSED, DaemonState.STOPPING):
            return
        was_running = self.state is DaemonState.RUNNING
        self.state = DaemonState.STOPPING
        self.accepting_runs = False
        try:
            for task in list(self._aux):
                await self._cancel(task)
            await self._drain(self.settings.scheduling.shutdown_grace_s)
        finally:
            if self._stack is not None:
                await self._stack.aclose()
            self.state = DaemonState.CLOSED
            if self._serving:
                self._beat()  # "closed": `chargeback check` fails at once
            self.http = None
            self.storage = None
            if was_running:
                log.info("daemon stopped", summary=self.summary_line())

    async def _drain(self, grace_s: float) -> None:
        tasks = list(self._tasks.values())
        if not tasks:
            return
        log.info("waiting for running tenants", running=len(tasks), grace_s=grace_s)
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        if pending:
            log.warning("cancelling running tenants", cancelled=len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=10)

    async def _close_tenants(self) -> None:
        for tenant in [*self._tenants.values(), *self._retired]:
            try:
                await tenant.runtime.aclose()
            except Exception:  # a plugin's close must not stop the others' close
                log.exception("tenant close failed", tenant_id=tenant.name)
        self._tenants.clear()
        self._retired.clear()

    @staticmethod
    def _need(value: _T | None) -> _T:
        """Return a resource that exists only while the daemon is started."""
        if value is None:
            raise RuntimeError("the daemon is not started")
        return value

    @staticmethod
    async def _cancel(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @staticmethod
    def _write_pid(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n", encoding="utf-8")

    @staticmethod
    def _remove_pid(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            if int(path.read_text(encoding="utf-8").strip()) == os.getpid():
                path.unlink()
