"""Cron for the daemon: crontab lines as UTC triggers, and the runs a tenant missed.

APScheduler's in-memory job store forgets everything on restart. Instead of a
persistent job store, the daemon compares each tenant's last successful run (stored
in the database) with the latest time its cron expression fired: if the run is older,
the tenant missed a run while the daemon was down, and it runs once at start-up.

:class:`TenantScheduler` is the daemon's one job per tenant on an ``AsyncIOScheduler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

if TYPE_CHECKING:
    from chargeback.settings import SchedulingSettings

__all__ = ["TenantScheduler", "cron_trigger", "latest_fire_time", "missed_run", "next_fire_time"]

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")

_SPANS = (dt.timedelta(days=2), dt.timedelta(days=32), dt.timedelta(days=400))
_MAX_STEPS = 10_000
_TICK = dt.timedelta(microseconds=1)


def cron_trigger(expr: str, *, jitter_s: int | None = None) -> CronTrigger:
    """Build a UTC :class:`CronTrigger` from a standard five-field crontab expression.

    Day-of-week numbers follow crontab (0 and 7 are Sunday), not APScheduler 3's
    Monday-based numbering.

    Raises:
        ValueError: the expression is not a valid crontab line.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 cron fields (minute hour day month weekday), got {expr!r}")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_crontab_dow(dow),
        timezone="UTC",
        jitter=jitter_s or None,
    )


def _crontab_dow(field: str) -> str:
    """Translate crontab weekday numbers (Sunday = 0 or 7) into names APScheduler reads."""
    if not any(ch.isdigit() for ch in field):
        return field
    days: list[str] = []
    for part in field.split(","):
        rng, _, step_s = part.partition("/")
        step = int(step_s) if step_s else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            lo_s, hi_s = rng.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        else:
            lo = hi = int(rng)
        if not (0 <= lo <= hi <= 7) or step < 1:
            raise ValueError(f"bad weekday field {field!r} (0-7, Sunday is 0 or 7)")
        days.extend(_DOW_NAMES[d] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(days))


def latest_fire_time(expr: str, now: dt.datetime) -> dt.datetime | None:
    """Return the latest time ``<= now`` at which cron ``expr`` (UTC) fired, if any in a year."""
    trigger = cron_trigger(expr)
    for span in _SPANS:
        latest: dt.datetime | None = None
        fire = trigger.get_next_fire_time(None, now - span)
        steps = 0
        while fire is not None and fire <= now and steps < _MAX_STEPS:
            latest = fire
            fire = trigger.get_next_fire_time(fire, fire + _TICK)
            steps += 1
        if latest is not None:
            return latest
    return None


def next_fire_time(expr: str, now: dt.datetime) -> dt.datetime | None:
    """Return the next time ``> now`` at which cron ``expr`` (UTC) fires, if any."""
    trigger = cron_trigger(expr)
    fire: dt.datetime | None = trigger.get_next_fire_time(None, now + _TICK)
    return fire


def missed_run(expr: str, last_success: dt.datetime | None, now: dt.datetime) -> bool:
    """Return whether a tenant whose last success started at ``last_success`` missed a run."""
    fired = latest_fire_time(expr, now)
    if last_success is None:
        return True
    return fired is not None and last_success < fired


class TenantScheduler:
    """One APScheduler job per tenant, on the running loop, in UTC.

    Runs of one tenant never overlap (``max_instances`` 1) and missed fire times are
    coalesced into one run while they are less than ``misfire_grace_s`` late.

    Args:
        job: the coroutine function a fire time calls with the tenant's name.
        misfire_grace_s: how late a fire time may still run.
    """

    def __init__(self, job: Callable[[str], Awaitable[None]], *, misfire_grace_s: int) -> None:
        self._job = job
        self._misfire_grace_s = misfire_grace_s
        self._scheduler: AsyncIOScheduler | None = None

    @classmethod
    def of(
        cls, job: Callable[[str], Awaitable[None]], settings: SchedulingSettings
    ) -> TenantScheduler:
        """The scheduler with ``settings.misfire_grace_s``."""
        return cls(job, misfire_grace_s=settings.misfire_grace_s)

    @property
    def running(self) -> bool:
        """Whether the scheduler runs (``/readyz`` asks)."""
        return self._scheduler is not None and bool(self._scheduler.running)

    def start(self) -> None:
        """Start scheduling on the running loop."""
        self._scheduler = AsyncIOScheduler(
            event_loop=asyncio.get_running_loop(),
            timezone=dt.UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self._misfire_grace_s,
            },
        )
        self._scheduler.start()

    def schedule(self, name: str, expr: str, *, jitter_s: int) -> None:
        """Run tenant ``name`` at the times of crontab line ``expr`` (replacing its job).

        Each fire time is delayed by a random ``0..jitter_s`` seconds.
        """
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not started")
        self._scheduler.add_job(
            self._job,
            cron_trigger(expr, jitter_s=jitter_s),
            args=[name],
            id=f"tenant:{name}",
            name=f"run {name}",
            replace_existing=True,
        )

    def schedule_collection(
        self, settings: SchedulingSettings, job: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``job`` (the daemon's usage collection) at ``settings.usage_collection``,
        delayed by up to ``settings.jitter_s``; nothing if that is ``None``."""
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not started")
        if settings.usage_collection is None:
            return
        self._scheduler.add_job(
            job,
            cron_trigger(settings.usage_collection, jitter_s=settings.jitter_s),
            id="usage-collection",
            name="collect usage",
            replace_existing=True,
        )

    def unschedule(self, name: str) -> None:
        """Remove tenant ``name``'s job, if it has one."""
        if self._scheduler is not None:
            with contextlib.suppress(LookupError):
                self._scheduler.remove_job(f"tenant:{name}")

    def shutdown(self) -> None:
        """Stop scheduling (running jobs are the pool's tasks, not waited for). Idempotent."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
