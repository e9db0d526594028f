"""Open and closed days (DESIGN §16): the sync's decisions and the SQLite side of it.

:func:`plan_sync` decides, from each calculated day's billing state and its stored
period state, what a sync changes; :class:`PeriodStore` (a mixin of
:class:`~chargeback.core.storage.sqlite.SQLiteBackend`) reads those rows and writes the
decisions in one transaction. PostgreSQL's mixin
(:mod:`chargeback.core.storage.postgres._periods`) uses the same plan.

The rules: a day is open while it is inside the settle and recalculation window
(``day >= open_from``) and closed after. A closed day whose billing fingerprint is not
the one it closed with was restated: it reopens on the sync's date, the before/after
totals are recorded, and it closes again once that reopening date is itself older
than ``open_from`` (a restated bill may be corrected again within the same settle
period). The first sync of an older database files its days directly as open or
closed; only changes of an already filed day are reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import aiosqlite

from chargeback.core.storage._util import date_from_text, datetime_from_text, datetime_to_text
from chargeback.core.storage.backend import PeriodSync, Restatement

__all__ = ["DayPeriod", "PeriodStore", "SyncPlan", "plan_sync"]

OPEN, CLOSED = "open", "closed"


class DayPeriod(NamedTuple):
    """One calculated day with its stored period state (``status`` None: never filed)."""

    day: dt.date
    fingerprint: str
    billed_total: int
    status: str | None
    closed_fingerprint: str | None
    closed_billed_total: int | None
    reopened_on: dt.date | None


@dataclass(slots=True)
class SyncPlan:
    """What a sync writes: new rows, days to close, restated days to reopen."""

    new: list[tuple[dt.date, str, str | None, int | None]] = field(default_factory=list)
    """``(day, status, closed_fingerprint, closed_billed_total)`` of days never filed."""
    close: list[DayPeriod] = field(default_factory=list)
    reopen: list[Restatement] = field(default_factory=list)

    def result(self) -> PeriodSync:
        """The sync's report (days filed for the first time are not changes)."""
        return PeriodSync(tuple(p.day for p in self.close), tuple(self.reopen))


def plan_sync(days: Iterable[DayPeriod], open_from: dt.date, at: dt.datetime) -> SyncPlan:
    """Decide the sync of ``days`` (see the module docstring for the rules)."""
    plan = SyncPlan()
    for p in days:
        settled = p.day < open_from
        if p.status is None:
            if settled:
                plan.new.append((p.day, CLOSED, p.fingerprint, p.billed_total))
            else:
                plan.new.append((p.day, OPEN, None, None))
        elif p.status == CLOSED and p.closed_fingerprint != p.fingerprint:
            plan.reopen.append(
                Restatement(
                    day=p.day,
                    detected_at=at,
                    billed_before=p.closed_billed_total or 0,
                    billed_after=p.billed_total,
                    fingerprint_before=p.closed_fingerprint or "",
                    fingerprint_after=p.fingerprint,
                )
            )
        elif p.status == OPEN and settled and (p.reopened_on is None or p.reopened_on < open_from):
            plan.close.append(p)
    return plan


SELECT_DAYS = """
SELECT s.date, s.billing_fingerprint, s.billed_total, p.status, p.closed_fingerprint,
    p.closed_billed_total, p.reopened_on
FROM date_state AS s LEFT JOIN period_state AS p ON p.tenant_id = s.tenant_id AND p.date = s.date
WHERE s.tenant_id = ?
ORDER BY s.date
"""
INSERT_NEW = (
    "INSERT INTO period_state (tenant_id, date, status, changed_at, closed_fingerprint, "
    "closed_billed_total) VALUES (?, ?, ?, ?, ?, ?)"
)
CLOSE = (
    "UPDATE period_state SET status = 'closed', changed_at = ?, closed_fingerprint = ?, "
    "closed_billed_total = ? WHERE tenant_id = ? AND date = ?"
)
REOPEN = (
    "UPDATE period_state SET status = 'open', changed_at = ?, reopened_on = ?, "
    "restatements = restatements + 1 WHERE tenant_id = ? AND date = ?"
)
INSERT_RESTATEMENT = (
    "INSERT INTO restatements (tenant_id, date, detected_at, billed_before, billed_after, "
    "fingerprint_before, fingerprint_after) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
STATUSES = (
    "SELECT date, status FROM period_state WHERE tenant_id = ? AND date >= ? AND date < ? "
    "ORDER BY date"
)
COUNTS = "SELECT tenant_id, COUNT(*) FROM restatements GROUP BY tenant_id ORDER BY tenant_id"
LIST = (
    "SELECT date, detected_at, billed_before, billed_after, fingerprint_before, "
    "fingerprint_after FROM restatements WHERE tenant_id = ? "
    "ORDER BY restatement_id DESC LIMIT ?"
)


class _Backend(Protocol):
    def _read(self, action: str) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    def _write(self, action: str) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...


def _opt_date(value: object) -> dt.date | None:
    return None if value is None else date_from_text(str(value))


class PeriodStore:
    """The period methods of the SQLite backend (see the module docstring)."""

    async def sync_periods(
        self: _Backend, tenant_id: str, open_from: dt.date, at: dt.datetime
    ) -> PeriodSync:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.sync_periods`."""
        when = datetime_to_text(at)
        today = at.astimezone(dt.UTC).date().isoformat()
        async with self._write(f"syncing the periods of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(SELECT_DAYS, (tenant_id,))
            plan = plan_sync(
                (
                    DayPeriod(date_from_text(r[0]), r[1], r[2], r[3], r[4], r[5], _opt_date(r[6]))
                    for r in rows
                ),
                open_from,
                at,
            )
            await conn.executemany(
                INSERT_NEW,
                [(tenant_id, d.isoformat(), s, when, fp, b) for d, s, fp, b in plan.new],
            )
            await conn.executemany(
                CLOSE,
                [
                    (when, p.fingerprint, p.billed_total, tenant_id, p.day.isoformat())
                    for p in plan.close
                ],
            )
            await conn.executemany(
                REOPEN, [(when, today, tenant_id, r.day.isoformat()) for r in plan.reopen]
            )
            await conn.executemany(
                INSERT_RESTATEMENT,
                [
                    (
                        tenant_id,
                        r.day.isoformat(),
                        when,
                        r.billed_before,
                        r.billed_after,
                        r.fingerprint_before,
                        r.fingerprint_after,
                    )
                    for r in plan.reopen
                ],
            )
        return plan.result()

    async def period_statuses(
        self: _Backend, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, str]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.period_statuses`."""
        async with self._read(f"reading the periods of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(
                STATUSES, (tenant_id, start.isoformat(), end.isoformat())
            )
        return {date_from_text(r[0]): str(r[1]) for r in rows}

    async def restatement_counts(self: _Backend) -> dict[str, int]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.restatement_counts`."""
        async with self._read("counting restatements") as conn:
            rows = await conn.execute_fetchall(COUNTS)
        return {str(r[0]): int(r[1]) for r in rows}

    async def list_restatements(
        self: _Backend, tenant_id: str, limit: int = 100
    ) -> list[Restatement]:
        """See :meth:`~chargeback.core.storage.backend.StorageBackend.list_restatements`."""
        async with self._read(f"listing the restatements of tenant {tenant_id!r}") as conn:
            rows = await conn.execute_fetchall(LIST, (tenant_id, limit))
        return [
            Restatement(date_from_text(r[0]), datetime_from_text(r[1]), r[2], r[3], r[4], r[5])
            for r in rows
        ]
