"""Where a run's usage comes from: the seam between the date pipeline and usage sources.

The pipeline (:mod:`~chargeback.core.engine.pipeline`) knows nothing about metrics
sources. It speaks to one :class:`UsageProvider` per run, in two calls:

1. :meth:`UsageProvider.prepare` once a chunk's billing is in and its changed dates
   are known: "these dates, ``first`` through ``last``, need these metric queries for
   these resources". A provider fetches (or loads) what it does not hold yet.
2. :meth:`UsageProvider.for_date` when a date is allocated, oldest first: "hand me
   the usage of this date". The provider may forget the date afterwards; each date
   is asked for once.

:class:`RunUsage` is the provider of today: it asks the plugin's
:class:`~chargeback.core.plugin.protocols.MetricsSource` once per query and resource
per run (DESIGN §10: later chunks only ask for resources not asked for yet), up to
the run's last date, and keeps the tables packed per date (:class:`UsageSpool`) until
their date is allocated. The engine's provider is the usage ledger's
(:class:`~chargeback.core.ledger.provider.LedgerUsage`, DESIGN §13): ``prepare`` reads
what is stored and fetches only the missing cells inside the source's retention,
``for_date`` hands the stored usage back and ``gaps`` names the cells beyond retention
that were never stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import structlog

from chargeback.core.engine.spool import UsageSpool
from chargeback.core.ledger.records import NO_GAPS, UsageGaps
from chargeback.core.models import MetricQuery, UsageTable
from chargeback.core.plugin.protocols import MetricsSource

__all__ = ["RESOURCES_PER_FETCH", "RunUsage", "UsageProvider", "gaps_of"]

log = structlog.get_logger(__name__)

RESOURCES_PER_FETCH = 50
"""Resources whose usage is fetched together (all their queries at once, then the next ones)."""


@runtime_checkable
class UsageProvider(Protocol):
    """The usage of one run's dates, as the date pipeline asks for it.

    A provider may also have ``gaps(day) -> UsageGaps`` (see :func:`gaps_of`): the
    usage of ``day`` that is unavailable (neither stored nor fetchable), with the
    reason and the fallback its lines are split by; the pipeline calls it once per
    allocated date, after ``for_date``. A provider without it has no gaps.
    """

    async def prepare(
        self, needed: Mapping[MetricQuery, set[str]], first: dt.date, last: dt.date
    ) -> None:
        """Make the usage of ``needed`` (query -> resource ids) for ``first..last`` ready.

        Called once per chunk of the run, before its dates are allocated; ``last`` is
        the run's last date, so a resource's usage can be fetched once for the whole
        rest of the run. May raise (the run then fails; committed dates stay).
        """
        ...

    def for_date(self, day: dt.date) -> Mapping[MetricQuery, UsageTable]:
        """Return every prepared query's table restricted to ``day`` (a query with no
        usage that day maps to an empty table). Called once per allocated date."""
        ...


class RunUsage:
    """Usage fetched from the plugin's metrics source, once per query and resource per run.

    Args:
        metrics: the plugin's metrics source, or ``None`` if it has none (a date that
            needs usage then gets empty tables, and a warning is logged).
        resources_per_fetch: how many resources are fetched together (default
            :data:`RESOURCES_PER_FETCH`).
    """

    def __init__(
        self,
        metrics: MetricsSource | None,
        *,
        resources_per_fetch: int | None = None,
    ) -> None:
        self._metrics = metrics
        self._batch = resources_per_fetch or RESOURCES_PER_FETCH
        self._spool = UsageSpool()
        self._asked: dict[MetricQuery, set[str]] = {}

    async def prepare(
        self, needed: Mapping[MetricQuery, set[str]], first: dt.date, last: dt.date
    ) -> None:
        """Fetch the usage of the resources in ``needed`` not asked for yet this run."""
        new = {q: ids - self._asked.get(q, set()) for q, ids in needed.items()}
        new = {q: ids for q, ids in new.items() if ids}
        for query, ids in new.items():
            self._asked.setdefault(query, set()).update(ids)
        if not new:
            return
        if self._metrics is None:
            log.warning("usage needed but the plugin has no metrics source", queries=len(new))
            return
        await self._fetch(self._metrics, new, first, last + dt.timedelta(days=1))

    def for_date(self, day: dt.date) -> dict[MetricQuery, UsageTable]:
        """Hand over one date's usage and forget it."""
        return self._spool.pop(day)

    def gaps(self, day: dt.date) -> UsageGaps:
        """Nothing is known to be unavailable: what the source did not answer is empty."""
        return NO_GAPS

    async def _fetch(
        self,
        metrics: MetricsSource,
        needed: Mapping[MetricQuery, set[str]],
        start: dt.date,
        end: dt.date,
    ) -> None:
        """Fetch ``start <= day < end`` a batch of resources at a time.

        The batch's queries go together: the same calls (one per query and resource),
        but the tables in memory hold one batch's resources, not all of them; a source
        that computes both byte metrics of a cluster-day at once (the sim, a caching
        proxy) still has them, and the client keeps its requests in flight across the
        queries.
        """
        queries = sorted(needed, key=lambda q: (q.key, q.metric))
        resources = sorted(set().union(*needed.values()))
        for i in range(0, len(resources), self._batch):
            batch = set(resources[i : i + self._batch])
            asks = [(q, sorted(needed[q] & batch)) for q in queries]
            asks = [(q, ids) for q, ids in asks if ids]
            # Every fetch finishes (none is left running) before the first error is raised.
            tables = await asyncio.gather(
                *(metrics.fetch(q, ids, start, end) for q, ids in asks), return_exceptions=True
            )
            for (query, _), table in zip(asks, tables, strict=True):
                if isinstance(table, BaseException):
                    raise table
                self._spool.add(query, table)


def gaps_of(provider: UsageProvider, day: dt.date) -> UsageGaps:
    """The provider's gaps of ``day``, or none if it has no ``gaps`` method."""
    gaps = getattr(provider, "gaps", None)
    if gaps is None:
        return NO_GAPS
    found = gaps(day)
    if not isinstance(found, UsageGaps):
        raise TypeError(f"{type(provider).__name__}.gaps() returned {type(found).__name__}")
    return found
