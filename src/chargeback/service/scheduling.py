"""Cron arithmetic for the daemon: the latest scheduled time a tenant may have missed.

APScheduler's in-memory job store forgets everything on restart. Instead of a
persistent job store, the daemon compares each tenant's last successful run (stored
in the database) with the latest time its cron expression fired: if the run is older,
the tenant missed a run while the daemon was down, and it runs once at start-up.
"""

from __future__ import annotations

import datetime as dt

from chargeback.settings import cron_trigger

__all__ = ["latest_fire_time", "missed_run"]

_SPANS = (dt.timedelta(days=2), dt.timedelta(days=32), dt.timedelta(days=400))
_MAX_STEPS = 10_000
_TICK = dt.timedelta(microseconds=1)


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


def missed_run(expr: str, last_success: dt.datetime | None, now: dt.datetime) -> bool:
    """Return whether a tenant whose last success started at ``last_success`` missed a run."""
    fired = latest_fire_time(expr, now)
    if last_success is None:
        return True
    return fired is not None and last_success < fired
