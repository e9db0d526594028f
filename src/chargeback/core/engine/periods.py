"""Open and closed days after each run (DESIGN §16): sync, log restatements, re-emit.

After a run's dates are committed, the tenant's period state is synced
(:meth:`~chargeback.core.storage.backend.StorageBackend.sync_periods`): a day is open
from the first day of the recalculation window on (its bill may still change) and
closed before it. A closed day whose bill changed since it closed (an operator's
rerun found a restated bill, for instance) reopens: it is logged as a restatement with
its before and after totals, counted in storage (``chargeback_restatements_total``),
and re-emitted. Every day whose status changed is emitted again, so emitters that show
the status (the ``focus`` emitter's period columns) write it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import structlog

from chargeback.core.emitters.runner import EmitOutcome, emit_date
from chargeback.core.engine.dates import DateWindow
from chargeback.core.engine.types import NamedEmitter
from chargeback.core.money import format_amount
from chargeback.core.storage.backend import PeriodSync, StorageBackend

__all__ = ["sync_periods"]

log = structlog.get_logger(__name__)


async def sync_periods(
    tenant_id: str,
    storage: StorageBackend,
    emitters: Sequence[NamedEmitter],
    *,
    win: DateWindow,
    clock: Callable[[], dt.datetime],
) -> tuple[PeriodSync, EmitOutcome]:
    """Sync the tenant's periods and re-emit the days whose status changed."""
    sync = await storage.sync_periods(tenant_id, win.recalc_first, clock())
    for r in sync.reopened:
        log.warning(
            "restatement: a closed day's bill changed, the day is open again",
            date=r.day.isoformat(),
            billed_before=format_amount(r.billed_before),
            billed_after=format_amount(r.billed_after),
            difference=format_amount(r.billed_after - r.billed_before),
        )
    if sync.closed:
        log.info("days closed", count=len(sync.closed), last=max(sync.closed).isoformat())
    outcome = EmitOutcome()
    changed = sync.changed
    if not changed or not emitters:
        return sync, outcome
    states = await storage.get_date_states(
        tenant_id, changed[0], changed[-1] + dt.timedelta(days=1)
    )
    for day in changed:
        state = states.get(day)
        if state is None:  # pragma: no cover - a synced day is a calculated day
            continue
        rows = await storage.read_rows(tenant_id, day)
        outcome.add(
            await emit_date(
                tenant_id,
                storage,
                emitters,
                day=day,
                calc_seq=state.calc_seq,
                rows=rows,
                clock=clock,
            )
        )
    return sync, outcome
