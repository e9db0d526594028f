"""The daemon's usage collection job (DESIGN §13): scheduled daily at 00:15 UTC by default."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from chargeback.service.scheduling import TenantScheduler
from chargeback.settings import SchedulingSettings


async def _noop(_: str) -> None:
    return None


async def test_the_collection_fires_next_at_its_crontab_time() -> None:
    """The job is registered at the next 00:15 UTC and calls the collection; ``null``
    schedules nothing (the job already there is left as it is)."""
    calls: list[str] = []

    async def collect() -> None:
        calls.append("collect")

    scheduler = TenantScheduler(_noop, misfire_grace_s=60)
    scheduler.start()
    try:
        scheduler.schedule_collection(SchedulingSettings(jitter_s=0), collect)
        job = scheduler._scheduler.get_job("usage-collection")  # type: ignore[union-attr]
        fire = job.next_run_time.astimezone(dt.UTC)
        now = dt.datetime.now(dt.UTC)
        assert (fire.hour, fire.minute) == (0, 15)
        assert now < fire <= now + dt.timedelta(days=1)
        await job.func()
        assert calls == ["collect"]
        scheduler.schedule_collection(SchedulingSettings(usage_collection=None), collect)
        assert scheduler._scheduler.get_job("usage-collection") is not None  # type: ignore[union-attr]
    finally:
        scheduler.shutdown()


def test_the_collection_schedule_is_a_checked_crontab_or_null() -> None:
    """The setting is a valid crontab line or null; anything else names the problem."""
    assert SchedulingSettings().usage_collection == "15 0 * * *"
    assert SchedulingSettings(usage_collection=None).usage_collection is None
    with pytest.raises(ValidationError, match="cron"):
        SchedulingSettings(usage_collection="every night")
