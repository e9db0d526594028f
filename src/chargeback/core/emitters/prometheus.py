"""The ``prometheus`` emitter: chargeback series served from an in-memory snapshot (DESIGN §8).

The emitter is also a prometheus_client collector. Its :meth:`PrometheusEmitter.collect`
reads only the snapshot, so a scrape never waits for the database or a running
pipeline; :meth:`PrometheusEmitter.refresh` rebuilds the snapshot from storage with
set-based queries. The daemon refreshes at start-up (a restarted process serves the
same data at once). Each emit marks its tenant as changed, and :meth:`flush` (called
by the daemon once at the end of every run) refreshes the changed tenants, so a
backfill of many dates costs one refresh, not one per date.

The series describe current state, never backdated samples (the database is the
history, Prometheus a view of it)::

    chargeback_cost_latest_day{tenant,identity,product_type,cost_type,env}
        cost of the tenant's latest calculated day, currency units
    chargeback_cost_month_to_date{tenant,identity,product_type,cost_type,env}
        cost from the 1st of that day's month to that day, currency units
    chargeback_latest_day_timestamp_seconds{tenant}
        start (00:00 UTC) of the latest calculated day
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chargeback.core.models import ChargebackRow
from chargeback.core.money import to_decimal
from chargeback.core.storage.backend import CostTotal, StorageBackend

__all__ = ["PrometheusEmitter", "make_prometheus_emitter"]

_LABELS = ("tenant", "identity", "product_type", "cost_type", "env")
_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _TenantSnapshot:
    latest_day: dt.date
    latest: tuple[CostTotal, ...]
    month_to_date: tuple[CostTotal, ...]


class PrometheusEmitter(Collector):
    """Emitter + collector for the chargeback series.

    Args:
        storage_backend: where :meth:`refresh` reads from.
        tenants: limit the series to these tenants (``None``: every stored tenant).
    """

    def __init__(
        self, storage_backend: StorageBackend, *, tenants: Collection[str] | None = None
    ) -> None:
        self._storage = storage_backend
        self._tenants: frozenset[str] | None = None if tenants is None else frozenset(tenants)
        self._snapshot: dict[str, _TenantSnapshot] = {}
        self._dirty: set[str] = set()

    def set_tenants(self, tenants: Collection[str] | None) -> None:
        """Limit the series to ``tenants`` (after a settings reload) and drop the others."""
        self._tenants = None if tenants is None else frozenset(tenants)
        if self._tenants is not None:
            self._snapshot = {t: s for t, s in self._snapshot.items() if t in self._tenants}

    async def refresh(self, tenant_id: str | None = None) -> None:
        """Rebuild the snapshot of ``tenant_id`` (``None``: every tenant) from storage."""
        if tenant_id is not None:
            tenants: Sequence[str] = [tenant_id]
        else:
            tenants = await self._storage.tenants()
        snapshot = dict(self._snapshot) if tenant_id is not None else {}
        for tenant in tenants:
            if self._tenants is not None and tenant not in self._tenants:
                continue
            latest = await self._storage.latest_calculated_date(tenant)
            if latest is None:
                snapshot.pop(tenant, None)
                continue
            day_rows = await self._storage.cost_totals(tenant, latest, latest + _ONE_DAY)
            mtd_rows = await self._storage.cost_totals(
                tenant, latest.replace(day=1), latest + _ONE_DAY
            )
            snapshot[tenant] = _TenantSnapshot(latest, tuple(day_rows), tuple(mtd_rows))
        self._snapshot = snapshot  # one reference swap: collect() sees old or new, never half

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        """Mark the tenant changed if ``day`` can change its series (same month or newer)."""
        current = self._snapshot.get(tenant_id)
        if current is None or day >= current.latest_day.replace(day=1):
            self._dirty.add(tenant_id)

    async def flush(self) -> None:
        """Refresh every tenant marked changed since the last flush."""
        while self._dirty:
            await self.refresh(self._dirty.pop())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the series from the snapshot; never touches storage."""
        snapshot = self._snapshot
        latest = GaugeMetricFamily(
            "chargeback_cost_latest_day",
            "Chargeback cost of the latest calculated day, in currency units.",
            labels=_LABELS,
        )
        mtd = GaugeMetricFamily(
            "chargeback_cost_month_to_date",
            "Chargeback cost from the 1st of the latest calculated day's month to that day,"
            " in currency units.",
            labels=_LABELS,
        )
        day_ts = GaugeMetricFamily(
            "chargeback_latest_day_timestamp_seconds",
            "Start (00:00 UTC) of the latest calculated day, as a Unix time.",
            labels=("tenant",),
        )
        for tenant in sorted(snapshot):
            snap = snapshot[tenant]
            start = dt.datetime.combine(snap.latest_day, dt.time(), tzinfo=dt.UTC)
            day_ts.add_metric([tenant], start.timestamp())
            for family, totals in ((latest, snap.latest), (mtd, snap.month_to_date)):
                for t in totals:
                    family.add_metric(
                        [tenant, t.identity_id, t.product_type, t.cost_type, t.env_id or ""],
                        float(to_decimal(t.amount)),
                    )
        yield latest
        yield mtd
        yield day_ts


def make_prometheus_emitter(*, storage_backend: StorageBackend) -> PrometheusEmitter:
    """Factory for the emitter registry (type ``prometheus``; takes no params)."""
    return PrometheusEmitter(storage_backend)


make_prometheus_emitter.needs_storage_backend = True  # type: ignore[attr-defined]
