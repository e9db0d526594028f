"""Collect usage while the source still has it (DESIGN §13).

Billing settles days after usage happens (Confluent: ~72 h), and the Metrics API
forgets usage after its retention (~7 days). So the usage of a day is fetched and
stored on its own schedule, independent of billing: the daemon runs
:func:`collect_usage` daily shortly after 00:00 UTC, and every run (``chargeback once``
included) runs it first. It asks for the days the source holds whole, from the oldest
inside retention to the last one that has ended, and fetches only the cells the ledger
lacks, so a day collected once costs nothing again.

Which usage: the queries that the product types billed in the last
:data:`BILLED_DAYS` days need, for the resources they were billed for. A resource not
billed yet (created in the last few days) is not collected; when its first bill is
allocated inside retention its usage is fetched then, like any missing cell.

A source with no retention (a Prometheus that keeps its history, or
``retention_days: null``) has nothing to lose, and nothing is collected for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from chargeback.core.ledger.provider import LedgerStats, LedgerUsage
from chargeback.core.ledger.records import UsagePolicy
from chargeback.core.models import MetricQuery

if TYPE_CHECKING:
    from chargeback.core.engine.allocation import Dispatcher
    from chargeback.core.plugin.protocols import MetricsSource
    from chargeback.core.storage.backend import StorageBackend

__all__ = ["BILLED_DAYS", "collect_usage"]

log = structlog.get_logger(__name__)

BILLED_DAYS = 35
"""How far back stored billing lines say which resources and queries to collect."""


async def collect_usage(
    storage: StorageBackend,
    tenant_id: str,
    dispatcher: Dispatcher,
    metrics: MetricsSource | None,
    policy: UsagePolicy,
    *,
    clock: Callable[[], dt.datetime],
) -> LedgerStats | None:
    """Fetch and store the recent usage the ledger lacks; ``None`` if nothing to collect.

    Raises whatever the source or the storage raises (the caller decides; a run logs it
    and goes on, since allocation fetches what it needs anyway).
    """
    if metrics is None or policy.retention_days is None:
        return None
    now = clock()
    window = policy.window(now)
    today = now.astimezone(dt.UTC).date()
    pairs = await storage.billed_resources(
        tenant_id, today - dt.timedelta(days=BILLED_DAYS), today + dt.timedelta(days=1)
    )
    needed: dict[MetricQuery, set[str]] = {}
    for product_type, resource_id in sorted(pairs):
        for query in dispatcher.route(product_type).queries:
            needed.setdefault(query, set()).add(resource_id)
    if not needed or window.first is None:
        return None
    provider = LedgerUsage(storage, tenant_id, metrics, policy, clock=clock)
    stats = await provider.collect(needed, window.first, window.last_complete)
    log.info(
        "usage collected",
        source=policy.source,
        first=window.first.isoformat(),
        last=window.last_complete.isoformat(),
        resources=len(set().union(*needed.values())),
        cells_fetched=stats.fetched,
        cells_stored=stats.stored,
    )
    return stats
