"""The daemon's side of replicas on PostgreSQL (DESIGN §18): leases, their task, metrics.

With a PostgreSQL backend the daemon runs every tenant under its lease
(:class:`~chargeback.core.storage.postgres.leases.LeaseManager` as the tenant pool's
run gate), heartbeats the leases in a task of its own, starts the tenants whose lease
was orphaned by a dead replica, and exposes:

=========================================  ==========================================
``chargeback_leases_held``                 gauge: tenant leases this replica holds
``chargeback_lease_claims_total``          counter: leases claimed (one per run)
``chargeback_lease_takeovers_total``       counter: leases taken from a dead replica
``chargeback_leases_lost_total``           counter: leases found taken while held
=========================================  ==========================================

With SQLite there is one process and no lease: :func:`start_leases` returns ``None``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chargeback.core.storage.backend import StorageBackend
from chargeback.settings import AppSettings

__all__ = ["start_leases"]

if TYPE_CHECKING:  # keeps psycopg out of a SQLite daemon's imports
    from chargeback.core.storage.postgres.leases import LeaseManager


class _LeaseCollector(Collector):
    """Reads the manager's counters at each scrape (plain ints and a dict: thread-safe)."""

    def __init__(self, leases: LeaseManager) -> None:
        self._leases = leases

    def collect(self) -> Iterator[Metric]:
        lm = self._leases
        held = GaugeMetricFamily("chargeback_leases_held", "Tenant leases this replica holds.")
        held.add_metric([], len(lm.held))
        yield held
        for name, doc, value in (
            ("chargeback_lease_claims", "Tenant leases claimed (one per run).", lm.claims),
            ("chargeback_lease_takeovers", "Leases taken from a replica that died.", lm.takeovers),
            ("chargeback_leases_lost", "Leases found taken by another replica.", lm.losses),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


async def start_leases(
    storage: StorageBackend,
    settings: AppSettings,
    on_wanted: Callable[[str], object],
    registry: CollectorRegistry,
    stack: AsyncExitStack,
) -> LeaseManager | None:
    """Start leasing when ``storage`` is PostgreSQL; undone by ``stack`` (leases released)."""
    from chargeback.core.storage.postgres import PostgresBackend  # noqa: PLC0415
    from chargeback.core.storage.postgres.leases import LeaseManager  # noqa: PLC0415

    if not isinstance(storage, PostgresBackend):
        return None
    leases = LeaseManager(
        storage, settings.enabled_tenants(), on_wanted, ttl_s=settings.storage.lease_ttl_s
    )
    collector = _LeaseCollector(leases)
    registry.register(collector)
    stack.callback(registry.unregister, collector)
    stack.push_async_callback(leases.release_all)
    task = asyncio.create_task(leases.run(), name="leases")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    return leases
