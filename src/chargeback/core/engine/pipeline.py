"""One run's date pipeline: gather, detect, allocate, commit, emit (seed "Lifecycle" step 8).

The tenant runtime (:mod:`~chargeback.core.engine.orchestrator`) decides which dates
need fetching, builds the shared context and the inventory (step 7), then hands the
dates to a :class:`DatePipeline`, which goes chunk by chunk (at most ``chunk_days``
of billing each), oldest first:

- **gather**: download the chunk's billing into the run's :class:`LineSpool`
  (:meth:`DatePipeline.gather`); the *next* chunk's billing downloads on the same
  loop while this chunk's dates are allocated and written;
- **detect**: digest each date's lines and keep the dates whose inputs changed
  (:meth:`DatePipeline.detect`), then ask the run's
  :class:`~chargeback.core.engine.usage.UsageProvider` to prepare their usage;
- **allocate**: split one date's lines into chargeback rows, in slices that yield to
  the event loop (:meth:`DatePipeline.allocate`);
- **commit**: replace the date's lines, rows and plugin rows in one transaction
  (:meth:`DatePipeline.commit`);
- **emit**: hand the committed rows to every emitter (:meth:`DatePipeline.emit`).

Commit and emit run as tasks while the next date is allocated: two may be in flight
(:class:`CommitQueue`), one writing and the next already encoded and queued on the
backend's write lock (first come, first served), so dates still commit in order. With
large dates the backend writes in a child process, and allocation and SQLite use both
cores. A chunk's dates are complete and independent, so a failure in a later chunk
keeps the dates already committed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import structlog

from chargeback.core.emitters.runner import EmitOutcome, emit_date
from chargeback.core.engine import dates as datesel
from chargeback.core.engine.allocation import DateAllocation, Dispatcher, RunNotes
from chargeback.core.engine.inventory import Inventory
from chargeback.core.engine.spool import LineSpool
from chargeback.core.engine.types import NamedEmitter, RunSummary
from chargeback.core.engine.usage import UsageProvider, gaps_of
from chargeback.core.models import (
    REFUSED,
    SCRAPE_GAP,
    BillingLineItem,
    ChargebackRow,
    IdentitySet,
)
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.plugin.protocols import CostInput, PluginRows, StorageModule
from chargeback.core.storage.backend import DateState, StorageBackend
from chargeback.core.unattributed import unattributed_of_rows

__all__ = ["Chunk", "CommitQueue", "DatePipeline", "PipelineParts", "RunPlan", "billing_chunks"]

log = structlog.get_logger(__name__)

COMMITS_IN_FLIGHT = 2
"""Dates committed or queued to commit while the next is allocated."""
ALLOCATION_SLICE = 50
"""Lines allocated between two yields to the event loop (a few milliseconds of work)."""


class Chunk(NamedTuple):
    """Dates whose billing is downloaded together: ``start <= day < end``, ``days`` only."""

    start: dt.date
    end: dt.date
    days: list[dt.date]


@dataclass(frozen=True, slots=True)
class PipelineParts:
    """What a tenant runtime lends its runs' pipelines (the same for every run)."""

    tenant_id: str
    storage: StorageBackend
    emitters: tuple[NamedEmitter, ...]
    dispatcher: Dispatcher
    cost_input: CostInput
    storage_module: StorageModule | None
    settings_fp: str
    clock: Callable[[], dt.datetime]
    chunk_days: int
    attributor: Attributor | None = None
    """Attributes each committed date to teams before it is emitted (DESIGN §14)."""


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Which dates one run fetches, and what it knows about them before fetching.

    Attributes:
        fetch: the dates whose billing is fetched, sorted (at least one).
        states: the stored state of the dates of the window and the reruns.
        reruns: dates an operator asked to recalculate.
        win: the run's date window.
    """

    fetch: list[dt.date]
    states: Mapping[dt.date, DateState]
    reruns: set[dt.date]
    win: datesel.DateWindow


class DatePipeline:
    """The dates of one run, from billing to emitted rows (see the module docstring).

    Args:
        parts: the tenant runtime's components.
        plan: the dates to fetch.
        inventory: the run's inventory (from step 7).
        usage: where the dates' usage comes from.
        summary: the run's summary, updated as dates are committed.
        emitted: the run's emission outcome, updated as dates are emitted.
    """

    def __init__(
        self,
        parts: PipelineParts,
        plan: RunPlan,
        *,
        inventory: Inventory,
        usage: UsageProvider,
        summary: RunSummary,
        emitted: EmitOutcome,
    ) -> None:
        self._parts = parts
        self._plan = plan
        self._inventory = inventory
        self._resources = {r.resource_id: r for r in inventory.resources}
        self._identities = IdentitySet(inventory.identities)
        self._usage = usage
        self._summary = summary
        self._emitted = emitted
        self._spool = LineSpool(parts.dispatcher.metric_queries)
        self._billing_fps: dict[dt.date, str] = {}
        self._notes = RunNotes()

    async def run(self) -> int:
        """Gather, detect, allocate, commit and emit every chunk; return the dates calculated."""
        chunks = billing_chunks(self._plan.fetch, self._parts.chunk_days)
        commits = CommitQueue(COMMITS_IN_FLIGHT)
        calculated = 0
        download: asyncio.Task[None] | None = asyncio.create_task(self.gather(chunks[0]))
        try:
            for n, chunk in enumerate(chunks, 1):
                assert download is not None  # noqa: S101  (one per chunk)
                await download
                download = None
                todo = await self.detect(chunk)
                if n < len(chunks):
                    download = asyncio.create_task(self.gather(chunks[n]))
                for day in todo:
                    calculated += 1
                    await self._work_date(day, commits)
                for day in chunk.days:
                    self._spool.discard(day)  # dates left unchanged: forget their lines
            await commits.drain()
        finally:
            await _cancel(download)
            await commits.settle()
        return calculated

    async def _work_date(self, day: dt.date, commits: CommitQueue) -> None:
        """Allocate one date, then queue its commit and emission."""
        with structlog.contextvars.bound_contextvars(date=day.isoformat()):
            lines = self._spool.pop(day)  # a date's objects exist only while worked on
            result = await self.allocate(day, lines)
            module = self._parts.storage_module
            plugin_rows: Sequence[PluginRows] = ()
            if module is not None:
                plugin_rows = module.billing_rows(self._parts.tenant_id, day, lines)
            await commits.put(partial(self._commit_and_emit, day, lines, result, plugin_rows))
            # The commit's parameters are built now; /metrics and the probes get a turn too.
            await asyncio.sleep(0)

    # -- gather -------------------------------------------------------------------------
    async def gather(self, chunk: Chunk) -> None:
        """Download the chunk's billing into the spool (its ``days`` only)."""
        wanted = set(chunk.days)
        summary, spool = self._summary, self._spool
        source = self._parts.cost_input.gather(self._parts.tenant_id, chunk.start, chunk.end)
        async for line in source:
            summary.lines_read += 1
            if line.date in wanted:
                spool.add(line)

    # -- detect -------------------------------------------------------------------------
    async def detect(self, chunk: Chunk) -> list[dt.date]:
        """Once a chunk's billing is in: the dates whose inputs changed, their usage ready.

        Usage is prepared up to the run's last date, so a resource is asked for once
        per run, not once per chunk.
        """
        spool, plan = self._spool, self._plan
        spool.finish()
        fps = {day: spool.fingerprint(day) for day in chunk.days}
        self._billing_fps.update(fps)
        todo = datesel.dates_to_allocate(
            chunk.days,
            plan.states,
            billing_fps=fps,
            inventory_fp=self._inventory.fingerprint,
            settings_fp=self._parts.settings_fp,
            reruns=plan.reruns,
            win=plan.win,
        )
        log.info(
            "dates selected",
            fetched=len(chunk.days),
            to_allocate=len(todo),
            chunk=f"{chunk.start}/{chunk.end}",
        )
        if todo:
            await self._usage.prepare(spool.needs(todo), todo[0], plan.fetch[-1])
        return todo

    # -- allocate -----------------------------------------------------------------------
    async def allocate(self, day: dt.date, lines: list[BillingLineItem]) -> DateAllocation:
        """Allocate a date in slices, yielding to the loop between them.

        Allocation is synchronous CPU work; a big date takes most of a second, and
        ``/metrics``, the probes and the signal handlers share this loop.
        """
        dispatcher = self._parts.dispatcher
        identities, resources = self._identities, self._resources
        context = dispatcher.resolve_context(day, identities, resources)
        usage = self._usage.for_date(day)
        gaps = gaps_of(self._usage, day)
        rows: list[ChargebackRow] = []
        unallocated = errors = lacking = 0
        for i in range(0, max(len(lines), 1), ALLOCATION_SLICE):
            part = dispatcher.allocate_date(
                day,
                lines[i : i + ALLOCATION_SLICE],
                identities=identities,
                resources=resources,
                usage=usage,
                notes=self._notes,
                context=context,
                gaps=gaps,
            )
            rows.extend(part.rows)
            unallocated += part.unallocated
            errors += part.allocator_errors
            lacking += part.usage_unavailable
            await asyncio.sleep(0)
        if lacking:
            log.warning("usage unavailable", lines=lacking, reason=gaps.reason)
        return DateAllocation(
            rows=rows, unallocated=unallocated, allocator_errors=errors, usage_unavailable=lacking
        )

    # -- commit and emit ----------------------------------------------------------------
    async def _commit_and_emit(
        self,
        day: dt.date,
        lines: list[BillingLineItem],
        result: DateAllocation,
        plugin_rows: Sequence[PluginRows],
    ) -> None:
        state = await self.commit(day, lines, result, plugin_rows)
        attributor = self._parts.attributor
        if attributor is not None:  # after the commit, never changing it; before the emitters
            inventory = self._inventory
            await attributor.after_commit(
                state,
                result.rows,
                inventory_key=inventory.fingerprint,
                resources=inventory.resources,
                identities=inventory.identities,
            )
        await self.emit(day, state, result.rows)

    async def commit(
        self,
        day: dt.date,
        lines: list[BillingLineItem],
        result: DateAllocation,
        plugin_rows: Sequence[PluginRows],
    ) -> DateState:
        """Commit one allocated date (one transaction) and count it in the summary."""
        parts, summary = self._parts, self._summary
        state = await parts.storage.commit_date(
            parts.tenant_id,
            day,
            lines=lines,
            rows=result.rows,
            plugin_rows=plugin_rows,
            billing_fingerprint=self._billing_fps[day],
            settings_fingerprint=parts.settings_fp,
            inventory_fingerprint=self._inventory.fingerprint,
            calculated_at=parts.clock(),
        )
        refused = sum(1 for line in lines if line.error and line.error.startswith(REFUSED))
        unattributed = unattributed_of_rows(result.rows, self._identities)
        summary.dates_calculated += 1
        summary.rows_written += len(result.rows)
        summary.unallocated += result.unallocated
        summary.usage_unavailable_lines += result.usage_unavailable
        summary.refused_lines += refused
        summary.unattributed += unattributed
        gaps = _scrape_gaps(lines)
        summary.scrape_gap_lines += gaps
        if gaps:
            log.warning(
                "billing lines without data", lines=gaps, reason="scrape_gap", date=str(day)
            )
        log.info(
            "date committed",
            lines=len(lines),
            rows=len(result.rows),
            calc_seq=state.calc_seq,
            allocator_errors=result.allocator_errors,
            usage_unavailable=result.usage_unavailable,
            refused_lines=refused,
        )
        if refused:
            log.warning("billing lines refused", lines=refused, see="chargeback reconcile")
        return state

    async def emit(self, day: dt.date, state: DateState, rows: Sequence[ChargebackRow]) -> None:
        """Hand a committed date's rows to every emitter; count the outcome."""
        parts = self._parts
        outcome = await emit_date(
            parts.tenant_id,
            parts.storage,
            parts.emitters,
            day=day,
            calc_seq=state.calc_seq,
            rows=rows,
            clock=parts.clock,
        )
        self._emitted.add(outcome)
        self._summary.emitted = self._emitted.emitted
        self._summary.emit_failures = self._emitted.failed


def _scrape_gaps(lines: Sequence[BillingLineItem]) -> int:
    """How many of a date's lines had no samples (``scrape_gap: ...``)."""
    return sum(1 for line in lines if line.error is not None and line.error.startswith(SCRAPE_GAP))


class CommitQueue:
    """Commit tasks in flight, oldest first, at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._tasks: collections.deque[asyncio.Task[None]] = collections.deque()

    async def put(self, commit: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start ``commit()`` as a task, once the oldest finished if the queue is full.

        The oldest's failure is raised here, and ``commit`` is then never called.
        """
        if len(self._tasks) == self._limit:
            await self._tasks.popleft()
        self._tasks.append(asyncio.create_task(commit()))

    async def drain(self) -> None:
        """Wait for every commit in flight, in order; the first failure is raised."""
        while self._tasks:
            await self._tasks.popleft()

    async def settle(self) -> None:
        """Finish the commits in flight when the loop over dates stops early.

        On an error (say the next date's allocator failed) they go on: their dates were
        allocated correctly and are kept. On cancellation (run timeout, shutdown) they
        are cancelled too; the backend still lets a started transaction finish, whole.
        """
        current = asyncio.current_task()
        cancelling = current is not None and current.cancelling() > 0
        while self._tasks:
            commit = self._tasks.popleft()
            if cancelling:
                commit.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.shield(commit)
            if commit.done() and not commit.cancelled() and commit.exception() is not None:
                log.error("date commit failed", error=str(commit.exception()))


async def _cancel(download: asyncio.Task[None] | None) -> None:
    """Stop a billing download still running when the loop over dates stops early."""
    if download is not None:
        download.cancel()
        # gather: a cancellation of this task itself still propagates.
        await asyncio.gather(download, return_exceptions=True)


def billing_chunks(fetch: Sequence[dt.date], days: int) -> list[Chunk]:
    """Split the (sorted) fetch dates into chunks of billing.

    Each billing span (:func:`~chargeback.core.engine.dates.spans`) is cut into
    pieces of at most ``days`` days; a chunk holds the fetch dates of one piece.
    """
    wanted = set(fetch)
    out: list[Chunk] = []
    step = dt.timedelta(days=days)
    for span in datesel.spans(fetch):
        start = span.start
        while start < span.end:
            end = min(start + step, span.end)
            dates = [
                start + dt.timedelta(days=i)
                for i in range((end - start).days)
                if start + dt.timedelta(days=i) in wanted
            ]
            if dates:
                out.append(Chunk(start, end, dates))
            start = end
    return out
