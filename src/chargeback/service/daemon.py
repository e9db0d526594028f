"""The daemon: one object that owns the whole lifecycle (DESIGN §9, STYLE habits 3-6).

::

    Daemon.run()                         sync entry point: asyncio.run(async_run())
      async_run()
        start()        AsyncExitStack:  pid file, storage (core.storage.factory), emitters
                                        (+ the /metrics exposition), tenant runtimes, HTTP
                                        server (service/http: a thread and loop of its own),
                                        scheduler, signals, heartbeat; then runs tenants
                                        that missed a run
        wait           until SIGTERM / SIGINT (or stop())
        aclose()       stop accepting runs, drain running tenants for shutdown_grace_s,
                       cancel the rest, close everything in reverse order. Idempotent.

Signals are installed inside the running loop (``loop.add_signal_handler``) and the
handlers stay synchronous: SIGUSR1 runs every tenant now, SIGHUP reloads the settings
file, SIGTERM/SIGINT stop gracefully (a second one cancels running tenants at once).

Every tenant run is a task the daemon owns (service/tenants.py); a request while the
tenant runs is queued right after, and progress is logged every few seconds
(service/progress.py). ``Daemon.run_once`` is the same machinery without scheduler
and HTTP (``chargeback once``; SIGTERM/SIGINT stop it as they stop the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import os
import signal
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry

from chargeback.core.engine.types import RunSummary
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.factory import make_backend
from chargeback.core.telemetry import set_telemetry
from chargeback.errors import ConfigError
from chargeback.logging import configure_logging, register_secrets
from chargeback.service import api, gcpolicy, ui
from chargeback.service.exposition import DaemonExposition
from chargeback.service.heartbeat import HeartbeatWriter
from chargeback.service.http import HttpServer, make_app
from chargeback.service.lifecycle import (
    open_emitters,
    outcome_of,
    run_missed,
    stop_signals,
    wait_unless_stopped,
    warn_no_tenants,
)
from chargeback.service.metrics import ServiceMetrics
from chargeback.service.pidfile import remove_pid, write_pid
from chargeback.service.progress import ProgressTelemetry
from chargeback.service.replicas import start_leases
from chargeback.service.scheduling import TenantScheduler
from chargeback.service.tenants import TenantPool
from chargeback.settings import (
    AppSettings,
    changed_tenants,
    load_settings,
    restart_only_changes,
    secret_values,
    validate_settings,
)

if TYPE_CHECKING:
    from chargeback.core.storage.postgres.leases import LeaseManager

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
        self.registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.registry)
        self.pool: TenantPool | None = None
        self.http: HttpServer | None = None
        self.storage: StorageBackend | None = None
        self.leases: LeaseManager | None = None
        self._plugins = plugins
        self._clock = clock
        self._aux: set[asyncio.Task[None]] = set()
        self._exposition = DaemonExposition(self.registry)
        self._scheduler: TenantScheduler | None = None
        self._stop: asyncio.Event | None = None
        self._stack: AsyncExitStack | None = None
        self._reload_task: asyncio.Task[None] | None = None
        self._reload_again = False
        self._heartbeat = HeartbeatWriter(
            lambda: self.settings.daemon, self.summary_line, lambda: str(self.state), clock
        )
        self._serving = False
        self.progress = ProgressTelemetry(
            self.metrics, lambda: [] if self.pool is None else self.pool.running_names()
        )
        self.stopped_by: signal.Signals | None = None
        """The stop signal that ended ``run_once`` early, if one did."""

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

        With ``handle_signals``, SIGTERM/SIGINT stop the runs as they stop the daemon:
        running tenants get ``shutdown_grace_s`` to finish, then are cancelled (a date
        being committed commits whole or rolls back); :attr:`stopped_by` names the signal.

        Raises:
            ConfigError: a named tenant is not configured or not enabled, or no tenant is.
        """
        names = list(tenants) if tenants else self.settings.enabled_tenants()
        unknown = [n for n in names if n not in self.settings.enabled_tenants()]
        if unknown:
            known = ", ".join(self.settings.enabled_tenants()) or "(none)"
            raise ConfigError(
                f"unknown or disabled tenant(s): {', '.join(unknown)}; enabled: {known}",
                field="tenants",
            )
        if not names:
            raise ConfigError("no enabled tenant to run (add one under tenants:)", field="tenants")
        tasks: dict[str, asyncio.Task[RunSummary | None]] = {}
        try:
            pool = await self._open_core(names)
            self.state = DaemonState.RUNNING
            if self.handle_signals:
                stop_signals(self.handle_stop_signal)
            keys = {n: pool.request_run(n, "once") for n in names}
            tasks = {n: pool.tasks[k] for n, k in keys.items() if k is not None}
            await wait_unless_stopped(self._need(self._stop), list(tasks.values()))
        finally:
            await self.aclose()
            if self.handle_signals:
                stop_signals(None)
        return [outcome_of(name, tasks.get(name), self._clock) for name in names]

    # -- start-up -------------------------------------------------------------------------
    async def _open_core(self, tenants: Sequence[str]) -> TenantPool:
        """Open storage, emitters and the tenant pool onto a fresh exit stack."""
        self.state = DaemonState.STARTING
        self._stop = asyncio.Event()
        self._stack = stack = AsyncExitStack()
        s = self.settings
        register_secrets(secret_values(s))
        set_telemetry(self.progress)
        context = contextvars.copy_context()

        storage = make_backend(s.storage)
        await storage.open()
        self.storage = storage
        stack.push_async_callback(storage.close)
        # A run still "running" whose process is gone was killed (storage.owner).
        interrupted = await storage.interrupt_stale_runs(self._clock())
        if interrupted:
            log.warning("runs of a stopped process marked interrupted", runs=interrupted)
        on_date = self.progress.date_emitted
        emitters = await open_emitters(
            s, storage, stack, self._exposition, self.metrics, on_date=on_date
        )
        # PostgreSQL: replicas share the tenants, each run under its lease (DESIGN §18).
        self.leases = await start_leases(storage, s, self._lease_wanted, self.registry, stack)

        if self._plugins is None:
            self._plugins = PluginRegistry.discover(s.plugins_path)
        self.pool = pool = TenantPool(
            storage,
            self._plugins,
            emitters,
            self.metrics,
            max_concurrent=s.scheduling.max_concurrent_tenants,
            context=context,
            after_run=self._exposition.flush,
            gate=self.leases,
        )
        stack.push_async_callback(pool.aclose)
        stack.push_async_callback(self._cancel, asyncio.create_task(self.progress.loop()))
        for name in tenants:
            await pool.add(name, s)
        gcpolicy.freeze_start_up()  # start-up is over (only if the CLI configured it)
        return pool

    def exposition(self) -> bytes:
        """Return ``/metrics``: the service metrics, then the chargeback series."""
        return self._exposition.exposition()

    def exposition_gzip(self) -> bytes:
        """Return ``/metrics`` as one gzip member (see :class:`DaemonExposition`)."""
        return self._exposition.exposition_gzip()

    async def start(self) -> None:
        """Acquire everything, start serving and scheduling.

        Raises:
            ConfigError: an emitter or the settings could not be set up.
            StorageError: the database could not be opened.
            OSError: the HTTP port could not be bound.
        """
        s = self.settings
        write_pid(s.daemon.pid_file)
        try:
            pool = await self._open_core(s.enabled_tenants())
        finally:
            if self._stack is not None:
                self._stack.callback(remove_pid, s.daemon.pid_file)
        stack = self._need(self._stack)
        if s.http.enabled:
            await self._start_http(stack)
        self._scheduler = TenantScheduler.of(self._scheduled_run, s.scheduling)
        self._scheduler.start()
        stack.callback(self._scheduler.shutdown)
        for name in pool.names():
            self._schedule(name, pool.schedule_of(name))
        self._scheduler.schedule_collection(s.scheduling, pool.collect_usage)  # DESIGN §13
        if self.handle_signals:
            self._install_signals()
            stack.callback(self._remove_signals)

        self.state = DaemonState.RUNNING
        self._serving = True
        self._heartbeat.beat()
        beat = asyncio.create_task(self._heartbeat.loop(), name="heartbeat")
        stack.push_async_callback(self._cancel, beat)
        log.info(
            "daemon started",
            pid=os.getpid(),
            tenants=len(pool),
            http=f"{s.http.host}:{self.http.port}" if self.http else None,
        )
        if not len(pool):
            warn_no_tenants(self.settings, self.settings_path)
        if s.scheduling.run_missed_on_startup:
            await run_missed(pool, self._clock())

    async def _start_http(self, stack: AsyncExitStack) -> None:
        """Serve ``/metrics``, the probes and ``/api/v1/`` (its own read-only storage)."""
        s = self.settings
        app = make_app(
            self._exposition,
            self,
            storage=functools.partial(make_backend, s.storage, read_only=True),
            routes=[*api.routes(s), *ui.routes(s)],
        )
        self.http = HttpServer(app, s.http.host, s.http.port)
        await self.http.start()
        stack.push_async_callback(self.http.aclose)

    # -- scheduling -------------------------------------------------------------------------
    def _schedule(self, name: str, schedule: str) -> None:
        jitter_s = self.settings.scheduling.jitter_s
        self._need(self._scheduler).schedule(name, schedule, jitter_s=jitter_s)

    async def _scheduled_run(self, name: str) -> None:
        """APScheduler job: start the tenant's run and return (the run is the pool's task)."""
        if self.pool is not None:
            self.pool.request_run(name, "schedule")

    def _lease_wanted(self, name: str) -> None:
        """A tenant whose lease a dead replica left, or free with pending reruns: run it."""
        if self.pool is not None and name in self.pool.names():
            self.pool.request_run(name, "takeover")

    def request_run_all(self, trigger: str = "signal") -> list[str]:
        """Start a run of every tenant that is not running (what SIGUSR1 does)."""
        return [] if self.pool is None else self.pool.request_run_all(trigger)

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
        tenants = 0 if self.pool is None else len(self.pool)
        log.info("runs requested", signal="SIGUSR1", started=len(keys), tenants=tenants)

    def handle_stop_signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop accepting runs and let ``async_run`` drain; a second signal cancels runs."""
        running = 0 if self.pool is None else len(self.pool.tasks)
        if self._stop is not None and self._stop.is_set():
            cancelled = 0 if self.pool is None else self.pool.cancel_all()
            log.warning("shutdown forced", signal=sig.name, cancelled=cancelled)
            return
        log.info("shutdown requested", signal=sig.name, running=running)
        self.stopped_by = sig
        self.stop()

    def stop(self) -> None:
        """Ask the daemon to stop (what SIGTERM does)."""
        if self.pool is not None:
            self.pool.accepting_runs = False
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
            if not self._reload_again or self.state is not DaemonState.RUNNING:
                return

    async def reload(self) -> bool:
        """Load the settings file again and apply tenant changes; return whether applied.

        A bad file is rejected with a log line and the old settings stay.
        """
        pool = self._need(self.pool)
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
        self._exposition.set_tenants(new.enabled_tenants())
        if self.leases is not None:
            self.leases.tenants = new.enabled_tenants()
        for name in [*removed, *changed]:
            if self._scheduler is not None:
                self._scheduler.unschedule(name)
            await pool.retire(name)
        for name in [*changed, *added]:
            if await pool.add(name, new) and self._scheduler is not None:
                self._schedule(name, new.tenant_schedule(name))
        reattributed = await pool.apply_ownership(old, new)
        log.info(
            "settings reloaded",
            added=added,
            removed=removed,
            changed=changed,
            ownership_reattributed=reattributed,
        )
        if not len(pool):
            warn_no_tenants(self.settings, self.settings_path)
        return True

    # -- health -----------------------------------------------------------------------------
    def summary_line(self) -> str:
        """One line of counters, for the heartbeat and its log line."""
        if self.pool is None:
            return "tenants=0 running=0 ok=0 failed=0 queued=0"
        c = self.pool.counters
        return (
            f"tenants={len(self.pool)} running={len(self.pool.tasks)} "
            f"ok={c['runs_ok']} failed={c['runs_failed']} queued={c['runs_queued']}"
        )

    def health(self) -> dict[str, Any]:
        """Liveness details for ``/healthz``."""
        age = self._heartbeat.age_s()
        details: dict[str, Any] = {
            "state": str(self.state),
            "heartbeat_age_s": age,
            "summary": self.summary_line(),
        }
        if self.leases is not None:
            lease = self.leases.state()
            details["leases"] = {"owner": lease.owner_id, "held": list(lease.held),
                                 "renewed_s_ago": lease.last_renewal_age_s}  # fmt: skip
        return details

    def readiness(self) -> list[str]:
        """Why the daemon is not ready for ``/readyz`` (empty: ready)."""
        reasons = []
        if self.state is not DaemonState.RUNNING:
            reasons.append(f"daemon is {self.state}")
        if self.storage is None:
            reasons.append("storage not open")
        if self.pool is not None and self.pool.storage_problem is not None:
            reasons.append(f"storage failing: {self.pool.storage_problem}")
        if self._scheduler is None or not self._scheduler.running:
            reasons.append("scheduler not running")
        if self.leases is not None and self.leases.problem is not None:
            reasons.append(self.leases.problem)
        return reasons

    # -- shutdown ---------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Drain running tenants (up to ``shutdown_grace_s``), then close all. Idempotent."""
        if self.state in (DaemonState.CLOSED, DaemonState.STOPPING):
            return
        self.state = DaemonState.STOPPING
        try:
            for task in list(self._aux):
                await self._cancel(task)
            if self.pool is not None:
                await self.pool.drain(self.settings.scheduling.shutdown_grace_s)
        finally:
            summary = self.summary_line()
            if self._stack is not None:
                await self._stack.aclose()
            self.state = DaemonState.CLOSED
            if self._serving:
                self._heartbeat.beat()  # "closed": `chargeback check` fails at once
                log.info("daemon stopped", summary=summary)
            self.http = None
            self.storage = None
            self.leases = None

    @staticmethod
    def _need(value: _T | None) -> _T:
        """Return a resource that exists only while the daemon is started."""
        if value is None:
            raise RuntimeError("the daemon is not started")
        return value

    @staticmethod
    async def _cancel(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
