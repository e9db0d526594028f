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
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry, generate_latest

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.emitters.prometheus import PrometheusEmitter
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.core.telemetry import set_telemetry
from chargeback.errors import ChargebackError, ConfigError
from chargeback.logging import configure_logging, register_secrets
from chargeback.service.heartbeat import Heartbeat, write_heartbeat
from chargeback.service.http import HttpServer, gzip_stream, make_app
from chargeback.service.metrics import ServiceMetrics
from chargeback.service.scheduling import missed_run
from chargeback.service.tenants import CountingEmitter, TenantPool
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
        self.storage: SQLiteBackend | None = None
        self._plugins = plugins
        self._clock = clock
        self._aux: set[asyncio.Task[None]] = set()
        self._prometheus: list[PrometheusEmitter] = []
        self._scheduler: AsyncIOScheduler | None = None
        self._stop: asyncio.Event | None = None
        self._stack: AsyncExitStack | None = None
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
            pool = await self._open_core(names)
            self.state = DaemonState.RUNNING
            keys = {n: pool.request_run(n, "once") for n in names}
            tasks = {n: pool.tasks[k] for n, k in keys.items() if k is not None}
            if tasks:
                await asyncio.wait(tasks.values())
        finally:
            await self.aclose()
        summaries: list[RunSummary] = []
        for name in names:
            task = tasks.get(name)
            ok = task is not None and not task.cancelled() and task.exception() is None
            result = task.result() if ok and task is not None else None
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
    async def _open_core(self, tenants: Sequence[str]) -> TenantPool:
        """Open storage, emitters and the tenant pool onto a fresh exit stack."""
        self.state = DaemonState.STARTING
        self._stop = asyncio.Event()
        self._stack = stack = AsyncExitStack()
        s = self.settings
        register_secrets(secret_values(s))
        set_telemetry(self.metrics)
        context = contextvars.copy_context()

        s.storage.path.parent.mkdir(parents=True, exist_ok=True)
        storage = SQLiteBackend(
            s.storage.path, writer_process_min_rows=s.storage.writer_process_min_rows
        )
        await storage.open()
        self.storage = storage
        stack.push_async_callback(storage.close)

        emitters: list[NamedEmitter] = []
        for em in s.emitters:
            emitter = emitter_registry.create(em.type, em.params, storage_backend=storage)
            if isinstance(emitter, PrometheusEmitter):
                emitter.set_tenants(s.enabled_tenants())
                # Served from its cached text by exposition(), not through the registry.
                self._prometheus.append(emitter)
                stack.callback(self._prometheus.remove, emitter)
                await emitter.refresh()
            emitters.append(NamedEmitter(em.name, CountingEmitter(em.name, emitter, self.metrics)))

        if self._plugins is None:
            self._plugins = PluginRegistry.discover(s.plugins_path)
        self.pool = pool = TenantPool(
            storage,
            self._plugins,
            emitters,
            self.metrics,
            max_concurrent=s.scheduling.max_concurrent_tenants,
            context=context,
            after_run=self._flush_prometheus,
        )
        stack.push_async_callback(pool.aclose)
        for name in tenants:
            await pool.add(name, s)
        return pool

    def exposition(self) -> bytes:
        """Return ``/metrics``: the service metrics, then the chargeback series.

        The service registry is small and rendered per scrape; the chargeback series
        (tens of thousands on a big organization) come pre-rendered from each
        ``prometheus`` emitter's last refresh.
        """
        return generate_latest(self.registry) + b"".join(
            emitter.exposition() for emitter in self._prometheus
        )

    def exposition_gzip(self) -> bytes:
        """Return :meth:`exposition`'s families as one gzip member, compressing little.

        The chargeback part was compressed at its last refresh; only the small service
        registry is compressed per scrape. The chargeback families come first here
        (the order of families does not matter to Prometheus).
        """
        parts = [(p.text, p.deflate, p.crc) for p in (e.published() for e in self._prometheus)]
        return gzip_stream(parts, generate_latest(self.registry))

    async def _flush_prometheus(self) -> None:
        for emitter in self._prometheus:
            await emitter.flush()

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
            pool = await self._open_core(s.enabled_tenants())
        finally:
            if self._stack is not None:
                self._stack.callback(self._remove_pid, s.daemon.pid_file)
        stack = self._need(self._stack)
        # The daemon is the single writer (pid file): a run still "running" was killed.
        interrupted = await self._need(self.storage).interrupt_stale_runs(self._clock())
        if interrupted:
            log.warning("runs interrupted by an earlier stop", runs=interrupted)

        if s.http.enabled:
            self.http = HttpServer(make_app(self, self), s.http.host, s.http.port)
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
        for name in pool.names():
            self._schedule(name, pool.schedule_of(name))

        if self.handle_signals:
            self._install_signals()
            stack.callback(self._remove_signals)

        self.state = DaemonState.RUNNING
        self._serving = True
        self._beat()
        beat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        stack.push_async_callback(self._cancel, beat)
        log.info(
            "daemon started",
            pid=os.getpid(),
            tenants=len(pool),
            http=f"{s.http.host}:{self.http.port}" if self.http else None,
        )
        if s.scheduling.run_missed_on_startup:
            await self._run_missed(pool)

    async def _run_missed(self, pool: TenantPool) -> None:
        """Run each tenant whose last success is older than its latest scheduled time."""
        now = self._clock()
        for name in pool.names():
            try:
                last = await pool.last_success(name)
            except ChargebackError as exc:
                log.warning("run history unreadable", tenant_id=name, error=str(exc))
                continue
            if missed_run(pool.schedule_of(name), last, now):
                log.info("missed run", tenant_id=name, last_success=last)
                pool.request_run(name, "missed")

    # -- scheduling -------------------------------------------------------------------------
    def _schedule(self, name: str, schedule: str) -> None:
        scheduler = self._need(self._scheduler)
        trigger = cron_trigger(schedule, jitter_s=self.settings.scheduling.jitter_s)
        scheduler.add_job(
            self._scheduled_run,
            trigger,
            args=[name],
            id=f"tenant:{name}",
            name=f"run {name}",
            replace_existing=True,
        )

    def _unschedule(self, name: str) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.remove_job(f"tenant:{name}")

    async def _scheduled_run(self, name: str) -> None:
        """APScheduler job: start the tenant's run and return (the run is the pool's task)."""
        if self.pool is not None:
            self.pool.request_run(name, "schedule")

    def _shutdown_scheduler(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)

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
        for prom in self._prometheus:
            prom.set_tenants(new.enabled_tenants())
        for name in [*removed, *changed]:
            self._unschedule(name)
            await pool.retire(name)
        for name in [*changed, *added]:
            if await pool.add(name, new) and self._scheduler is not None:
                self._schedule(name, new.tenant_schedule(name))
        log.info("settings reloaded", added=added, removed=removed, changed=changed)
        return True

    # -- health -----------------------------------------------------------------------------
    def summary_line(self) -> str:
        """One line of counters, for the heartbeat and its log line."""
        if self.pool is None:
            return "tenants=0 running=0 ok=0 failed=0 skipped=0"
        c = self.pool.counters
        return (
            f"tenants={len(self.pool)} running={len(self.pool.tasks)} "
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
        if self.pool is not None and self.pool.storage_problem is not None:
            reasons.append(f"storage failing: {self.pool.storage_problem}")
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
                self._beat()  # "closed": `chargeback check` fails at once
                log.info("daemon stopped", summary=summary)
            self.http = None
            self.storage = None

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
        with contextlib.suppress(OSError, ValueError):
            other = int(path.read_text(encoding="utf-8").strip())
            if other != os.getpid():
                os.kill(other, 0)  # raises if no such process: a stale file
                log.warning("pid file names a running process; overwriting", pid=other)
        path.write_text(f"{os.getpid()}\n", encoding="utf-8")

    @staticmethod
    def _remove_pid(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError, OSError):
            if int(path.read_text(encoding="utf-8").strip()) == os.getpid():
                path.unlink()
