"""Steps of the daemon's lifecycle that need none of its state (``service/daemon.py``).

The emitters a daemon opens, the missed runs it starts, the waiting of ``once`` for its
runs or a stop, the outcome of a ``once`` run that did not finish, and the warning of a
daemon that has no tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import structlog

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.emitters.prometheus import PrometheusEmitter
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import ChargebackError
from chargeback.service.exposition import DaemonExposition
from chargeback.service.metrics import ServiceMetrics
from chargeback.service.scheduling import missed_run
from chargeback.service.tenants import CountingEmitter, TenantPool
from chargeback.settings import AppSettings

__all__ = [
    "open_emitters",
    "outcome_of",
    "run_missed",
    "stop_signals",
    "wait_unless_stopped",
    "warn_no_tenants",
]

log = structlog.get_logger(__name__)


async def open_emitters(
    settings: AppSettings,
    storage: StorageBackend,
    stack: AsyncExitStack,
    exposition: DaemonExposition,
    metrics: ServiceMetrics,
    *,
    on_date: Callable[[], None] | None = None,
) -> list[NamedEmitter]:
    """Create the configured emitters; ``prometheus`` ones also feed ``/metrics``.

    ``on_date`` is called once per date the first emitter emitted (progress lines).
    """
    emitters: list[NamedEmitter] = []
    for i, em in enumerate(settings.emitters):
        emitter = emitter_registry.create(em.type, em.params, storage_backend=storage)
        if isinstance(emitter, PrometheusEmitter):
            emitter.set_tenants(settings.enabled_tenants())
            # Served from its cached text by the exposition, not through the registry.
            exposition.emitters.append(emitter)
            stack.callback(exposition.emitters.remove, emitter)
            await emitter.refresh()
        counted = CountingEmitter(em.name, emitter, metrics, on_date if i == 0 else None)
        emitters.append(NamedEmitter(em.name, counted))
    return emitters


async def run_missed(pool: TenantPool, now: dt.datetime) -> None:
    """Run each tenant whose last success is older than its latest scheduled time."""
    for name in pool.names():
        try:
            last = await pool.last_success(name)
        except ChargebackError as exc:
            log.warning("run history unreadable", tenant_id=name, error=str(exc))
            continue
        if missed_run(pool.schedule_of(name), last, now):
            log.info("missed run", tenant_id=name, last_success=last)
            pool.request_run(name, "missed")


async def wait_unless_stopped(stop: asyncio.Event, tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait until every task is done or ``stop`` is set, whichever comes first."""
    stopped = asyncio.create_task(stop.wait(), name="stop-wait")
    pending: set[asyncio.Future[Any]] = set(tasks)
    try:
        while pending and not stopped.done():
            _, pending = await asyncio.wait(
                {*pending, stopped}, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopped)
    finally:
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped


def outcome_of(
    name: str, task: asyncio.Task[Any] | None, clock: Callable[[], dt.datetime]
) -> RunSummary:
    """The summary a ``once`` run's task returned, or a failed one saying it did not."""
    ok = task is not None and task.done() and not task.cancelled() and task.exception() is None
    result = task.result() if ok and task is not None else None
    if isinstance(result, RunSummary):
        return result
    return RunSummary(
        run_id="-",
        tenant_id=name,
        trigger="once",
        started_at=clock(),
        status=RunStatus.FAILED,
        error="run did not finish (see log)",
    )


def stop_signals(handler: Callable[[signal.Signals], None] | None) -> None:
    """Send SIGTERM and SIGINT to ``handler`` on the running loop (None: remove them)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if handler is None:
            loop.remove_signal_handler(sig)
        else:
            loop.add_signal_handler(sig, handler, sig)


def warn_no_tenants(settings: AppSettings, settings_path: Path | None) -> None:
    """Say loudly that a daemon calculates nothing until it is given tenants."""
    source = settings_path or "the environment"
    log.warning(
        "no tenant to run: this daemon calculates nothing until tenants are added to "
        f"{source} and it is sent SIGHUP",
        configured=", ".join(sorted(settings.tenants)) or "none",
        enabled=0,
    )
