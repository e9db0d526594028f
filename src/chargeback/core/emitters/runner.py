"""The emitter runner: publish committed dates, record each attempt (DESIGN §4, §8).

A date is emitted once per calculation (its ``calc_seq``) and again after every
recalculation. A failing emitter is recorded and retried on the next run; it never
undoes a commit and never stops the other emitters.

An emitter may also have an async ``finish(tenant_id)`` method: it is called once at
the end of every run, after the dates were emitted, for work that spans dates (the
``focus`` emitter's month datasets). It must be idempotent; a failure is logged and
counted as an emit failure, and the next run's call repeats it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from chargeback.core.engine.types import NamedEmitter
from chargeback.core.models import ChargebackRow
from chargeback.core.storage.backend import StorageBackend

__all__ = ["EmitOutcome", "emit_date", "emit_pending", "finish_emitters"]

log = structlog.get_logger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class EmitOutcome:
    """What an emission pass did.

    Attributes:
        emitted: successful ``(emitter, date)`` emissions.
        failed: failed ones (recorded, retried next run).
        errors: ``"emitter date: error"`` per failure.
    """

    emitted: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    attempted: set[tuple[str, dt.date]] = field(default_factory=set)

    def add(self, other: EmitOutcome) -> None:
        """Add another pass's counts to this one."""
        self.emitted += other.emitted
        self.failed += other.failed
        self.errors.extend(other.errors)
        self.attempted |= other.attempted


async def _emit_one(
    tenant_id: str,
    storage: StorageBackend,
    named: NamedEmitter,
    *,
    day: dt.date,
    calc_seq: int,
    rows: Sequence[ChargebackRow],
    clock: Callable[[], dt.datetime],
    outcome: EmitOutcome,
) -> None:
    error: str | None = None
    outcome.attempted.add((named.name, day))
    try:
        await named.emitter(tenant_id, day, rows)
    except Exception as exc:  # emitter code may raise anything; record it, retry next run
        error = f"{type(exc).__name__}: {exc}"
        log.exception("emit failed", emitter=named.name, date=day.isoformat(), error=error)
    await storage.record_emission(
        tenant_id, named.name, day, calc_seq, emitted_at=clock(), error=error
    )
    if error is None:
        outcome.emitted += 1
    else:
        outcome.failed += 1
        outcome.errors.append(f"{named.name} {day.isoformat()}: {error}")


async def emit_date(
    tenant_id: str,
    storage: StorageBackend,
    emitters: Sequence[NamedEmitter],
    *,
    day: dt.date,
    calc_seq: int,
    rows: Sequence[ChargebackRow],
    clock: Callable[[], dt.datetime] = _utcnow,
) -> EmitOutcome:
    """Emit one just-committed date to every emitter, with its rows in hand."""
    outcome = EmitOutcome()
    for named in emitters:
        await _emit_one(
            tenant_id,
            storage,
            named,
            day=day,
            calc_seq=calc_seq,
            rows=rows,
            clock=clock,
            outcome=outcome,
        )
    return outcome


async def emit_pending(
    tenant_id: str,
    storage: StorageBackend,
    emitters: Sequence[NamedEmitter],
    *,
    clock: Callable[[], dt.datetime] = _utcnow,
    skip: set[tuple[str, dt.date]] | frozenset[tuple[str, dt.date]] = frozenset(),
) -> EmitOutcome:
    """Emit every date not yet emitted at its current ``calc_seq``, per emitter, oldest first.

    Args:
        tenant_id: the tenant.
        storage: where pending emissions, rows and records live.
        emitters: the tenant's emitters.
        clock: the current UTC time.
        skip: ``(emitter, date)`` pairs already attempted this run (a failure is
            retried on the next run, not immediately).
    """
    outcome = EmitOutcome()
    rows_cache: dict[dt.date, list[ChargebackRow]] = {}
    for named in emitters:
        pending = await storage.pending_emissions(tenant_id, named.name)
        for day, calc_seq in sorted(pending):
            if (named.name, day) in skip:
                continue
            rows = rows_cache.get(day)
            if rows is None:
                rows = await storage.read_rows(tenant_id, day)
                rows_cache[day] = rows
            await _emit_one(
                tenant_id,
                storage,
                named,
                day=day,
                calc_seq=calc_seq,
                rows=rows,
                clock=clock,
                outcome=outcome,
            )
    return outcome


async def finish_emitters(tenant_id: str, emitters: Sequence[NamedEmitter]) -> EmitOutcome:
    """Call ``finish(tenant_id)`` of every emitter that has one (see the module docstring)."""
    outcome = EmitOutcome()
    for named in emitters:
        finish = getattr(named.emitter, "finish", None)
        if finish is None:
            continue
        try:
            await finish(tenant_id)
        except Exception as exc:  # emitter code may raise anything; log it, retry next run
            error = f"{type(exc).__name__}: {exc}"
            log.exception("emitter finish failed", emitter=named.name, error=error)
            outcome.failed += 1
            outcome.errors.append(f"{named.name} finish: {error}")
    return outcome
