"""The engine's usage, read from the ledger; only missing cells are fetched (DESIGN §13).

:class:`LedgerUsage` is the :class:`~chargeback.core.engine.usage.UsageProvider` of a
run. For the queries and resources a chunk needs, over the rest of the run's dates:

1. ask the ledger which (date, query, resource) cells it lacks;
2. fetch those still inside the source's retention (:class:`UsagePolicy`), a batch of
   resources at a time, and store each batch's cells in one transaction as soon as it
   arrives, before any date is allocated (a cell the source answered nothing for is
   stored empty; a day not yet ended and settled is used but never stored);
3. hand every needed cell to the run: those stored before read from the ledger (collected
   days ago, or fetched by an earlier run), those fetched now exactly as they were just
   stored (reading them back would only cost time), so a date is split by stored usage
   whenever it is calculated.

Cells that are missing and beyond retention are the date's :class:`UsageGaps`: their
lines get the rule ``usage_unavailable`` (see the dispatcher), never a rule claiming
there was no usage.

:meth:`LedgerUsage.collect` runs steps 1-2 alone: the daemon's daily collection and the
start of every run store recent days' usage while the source still has it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import structlog

from chargeback.core.engine import usage as seam
from chargeback.core.engine.spool import UsageSpool
from chargeback.core.ledger.records import (
    NO_GAPS,
    UsageCell,
    UsageEntry,
    UsageGaps,
    UsagePolicy,
    query_id,
)
from chargeback.core.models import MetricQuery, UsageTable

if TYPE_CHECKING:
    from chargeback.core.plugin.protocols import MetricsSource
    from chargeback.core.storage.backend import StorageBackend

__all__ = ["LedgerStats", "LedgerUsage"]

log = structlog.get_logger(__name__)

Needed = Mapping[MetricQuery, set[str]]


@dataclass(slots=True)
class LedgerStats:
    """What one provider did, in cells (for the log and the run summary)."""

    read: int = 0
    fetched: int = 0
    stored: int = 0
    unavailable: int = 0


class LedgerUsage:
    """Usage from the ledger, the missing cells fetched from the plugin's source first.

    Args:
        storage: the tenant's storage (the ledger is in it).
        tenant_id: the tenant.
        metrics: the plugin's metrics source, or ``None`` if it has none (lines that
            need usage then get empty tables, and a warning is logged, as before).
        policy: the source's name, retention and the fallback for unavailable usage.
        clock: the current UTC time (decides which days are inside retention).
        resources_per_fetch: how many resources are fetched and stored together
            (default: the seam's :data:`~chargeback.core.engine.usage.RESOURCES_PER_FETCH`).
    """

    def __init__(
        self,
        storage: StorageBackend,
        tenant_id: str,
        metrics: MetricsSource | None,
        policy: UsagePolicy,
        *,
        clock: Callable[[], dt.datetime],
        resources_per_fetch: int | None = None,
    ) -> None:
        self._storage = storage
        self._tenant = tenant_id
        self._metrics = metrics
        self._policy = policy
        self._window = policy.window(clock())
        self._clock = clock
        self._batch = resources_per_fetch or seam.RESOURCES_PER_FETCH
        self._spool = UsageSpool()
        self._asked: dict[MetricQuery, set[str]] = {}
        self._gaps: dict[dt.date, dict[MetricQuery, set[str]]] = defaultdict(dict)
        self.stats = LedgerStats()

    # -- the UsageProvider protocol -------------------------------------------------------
    async def prepare(self, needed: Needed, first: dt.date, last: dt.date) -> None:
        """Make the usage of the resources in ``needed`` not prepared yet ready."""
        new = {q: ids - self._asked.get(q, set()) for q, ids in needed.items()}
        new = {q: ids for q, ids in new.items() if ids}
        for query, ids in new.items():
            self._asked.setdefault(query, set()).update(ids)
        if not new:
            return
        if self._metrics is None:
            log.warning("usage needed but the plugin has no metrics source", queries=len(new))
            return
        # The days after the run's last that the source holds whole are fetched and
        # stored in the same requests: the run does not allocate them (still inside the
        # billing cutoff), but their usage is kept while it exists, with no second
        # round of requests after the run.
        through = max(last, self._window.last_complete)
        filled = await self._fill(new, first, through, keep_gaps=True)
        await self._load(new, first, last, filled)
        log.info(
            "usage prepared",
            source=self._policy.source,
            cells_read=self.stats.read,
            cells_fetched=self.stats.fetched,
            cells_stored=self.stats.stored,
            cells_unavailable=self.stats.unavailable,
        )

    def for_date(self, day: dt.date) -> dict[MetricQuery, UsageTable]:
        """Hand over one date's usage (as read from the ledger) and forget it."""
        return self._spool.pop(day)

    def gaps(self, day: dt.date) -> UsageGaps:
        """The date's cells that are neither stored nor fetchable (then forgotten)."""
        missing = self._gaps.pop(day, None)
        if not missing:
            return NO_GAPS
        return UsageGaps(
            {q: frozenset(ids) for q, ids in missing.items()},
            reason=self._window.reason(day),
            fallback=self._policy.fallback,
        )

    # -- collection ---------------------------------------------------------------------
    async def collect(self, needed: Needed, first: dt.date, last: dt.date) -> LedgerStats:
        """Fetch and store the missing cells of ``needed`` for ``first..last`` that the
        source holds whole; nothing is kept in memory."""
        if self._metrics is not None and needed:
            last = min(last, self._window.last_complete)
            if self._window.first is not None:
                first = max(first, self._window.first)
            if first <= last:
                await self._fill(needed, first, last, keep_gaps=False)
        return self.stats

    # -- the work -----------------------------------------------------------------------
    async def _fill(
        self, needed: Needed, first: dt.date, last: dt.date, *, keep_gaps: bool
    ) -> _Filled:
        """Fetch and store the missing cells; return what was fetched and what was missing."""
        by_id = {query_id(q): q for q in needed}
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        wanted = {
            UsageCell(d, query_id(q), r) for q, ids in needed.items() for r in ids for d in days
        }
        missing = await self._storage.missing_usage(self._tenant, wanted)
        window = self._window
        to_fetch = {c for c in missing if window.fetchable(c.day)}
        if keep_gaps:
            for cell in missing - to_fetch:
                self._gaps[cell.day].setdefault(by_id[cell.query], set()).add(cell.resource_id)
            self.stats.unavailable += len(missing) - len(to_fetch)
        stored_before = len(wanted) > len(missing)
        if not to_fetch:
            return _Filled({}, missing, stored_before)
        return _Filled(await self._fetch_and_store(to_fetch, by_id), missing, stored_before)

    async def _fetch_and_store(
        self, cells: set[UsageCell], by_id: Mapping[str, MetricQuery]
    ) -> dict[MetricQuery, UsageTable]:
        """Fetch ``cells`` a batch of resources at a time; store each batch at once.

        Returns the fetched usage (the cells just stored, and those of days too fresh
        to store), which the run then uses as it was stored.
        """
        assert self._metrics is not None  # noqa: S101  (checked by the callers)
        per_query: dict[str, set[UsageCell]] = defaultdict(set)
        for cell in cells:
            per_query[cell.query].add(cell)
        resources = sorted({c.resource_id for c in cells})
        fresh: dict[MetricQuery, UsageTable] = defaultdict(dict)
        writing: asyncio.Task[None] | None = None
        try:
            for i in range(0, len(resources), self._batch):
                batch = set(resources[i : i + self._batch])
                asks = []
                for qid in sorted(per_query):
                    mine = {c for c in per_query[qid] if c.resource_id in batch}
                    if mine:
                        asks.append((by_id[qid], mine))
                tables = await asyncio.gather(
                    *(self._fetch_one(query, mine) for query, mine in asks), return_exceptions=True
                )
                entries: list[UsageEntry] = []
                for (query, mine), table in zip(asks, tables, strict=True):
                    if isinstance(table, BaseException):
                        raise table
                    entries.extend(self._entries(query, mine, table, fresh))
                # One batch is written (by the storage's writer process, for a large one)
                # while the next is fetched; all are stored before any is used.
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._store(entries))
            if writing is not None:
                await writing
        finally:
            if writing is not None and not writing.done():  # a fetch failed: finish the write
                await asyncio.gather(writing, return_exceptions=True)
        return fresh

    async def _store(self, entries: list[UsageEntry]) -> None:
        await self._storage.write_usage(self._tenant, entries)
        self.stats.stored += len(entries)

    async def _fetch_one(self, query: MetricQuery, cells: set[UsageCell]) -> UsageTable:
        """One query's missing cells of a batch: one fetch over their span of days."""
        assert self._metrics is not None  # noqa: S101
        start = min(c.day for c in cells)
        end = max(c.day for c in cells) + dt.timedelta(days=1)
        ids = sorted({c.resource_id for c in cells})
        table = await self._metrics.fetch(query, ids, start, end)
        self.stats.fetched += len(cells)
        return table

    def _entries(
        self,
        query: MetricQuery,
        cells: set[UsageCell],
        table: UsageTable,
        fresh: dict[MetricQuery, UsageTable],
    ) -> list[UsageEntry]:
        """The storable cells as entries; every cell's usage also goes to ``fresh``."""
        at = self._clock()
        out: list[UsageEntry] = []
        for cell in sorted(cells):
            values = dict(table.get((cell.day, cell.resource_id), {}))
            if values:
                fresh[query][(cell.day, cell.resource_id)] = values
            if not self._window.storable(cell.day):
                continue
            out.append(
                UsageEntry(cell.day, cell.query, cell.resource_id, values, self._policy.source, at)
            )
        return out

    async def _load(self, needed: Needed, first: dt.date, last: dt.date, filled: _Filled) -> None:
        """Put the needed cells into the spool, per query: those stored before from the
        ledger, those fetched now as they were just stored."""
        by_id = {query_id(q): q for q in needed}
        tables: dict[MetricQuery, UsageTable] = {q: {} for q in needed}
        if filled.stored_before:
            entries = await self._storage.read_usage(
                self._tenant,
                first,
                last + dt.timedelta(days=1),
                queries=list(by_id),
                resource_ids=set().union(*needed.values()),
            )
            for entry in entries:
                query = by_id[entry.query]
                if entry.resource_id in needed[query] and entry.cell not in filled.missing:
                    self.stats.read += 1
                    if entry.values:
                        tables[query][(entry.day, entry.resource_id)] = dict(entry.values)
        for query, table in filled.fresh.items():  # the run's days only (see prepare)
            mine = tables.setdefault(query, {})
            mine.update((key, values) for key, values in table.items() if key[0] <= last)
        for query, table in tables.items():
            self._spool.add(query, table)


class _Filled(NamedTuple):
    """What :meth:`LedgerUsage._fill` did: the usage it fetched (query -> table), the
    cells the ledger lacked, and whether it held any of the wanted cells before."""

    fresh: Mapping[MetricQuery, UsageTable]
    missing: set[UsageCell]
    stored_before: bool
