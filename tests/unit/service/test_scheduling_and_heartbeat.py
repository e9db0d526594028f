"""Missed-run arithmetic and the heartbeat check (STYLE habit 6)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from chargeback.service.heartbeat import Heartbeat, check_heartbeat, write_heartbeat
from chargeback.service.scheduling import latest_fire_time, missed_run

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


class TestLatestFireTime:
    """The latest scheduled time at or before now, in UTC."""

    def test_daily(self) -> None:
        """A daily 06:00 job last fired today at 06:00."""
        assert latest_fire_time("0 6 * * *", NOW) == dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)

    def test_before_todays_time(self) -> None:
        """At 05:00 the last firing was yesterday's."""
        early = NOW.replace(hour=5)
        assert latest_fire_time("0 6 * * *", early) == dt.datetime(2026, 3, 9, 6, tzinfo=dt.UTC)

    def test_monthly(self) -> None:
        """A monthly job is found beyond the two-day window."""
        assert latest_fire_time("0 0 1 * *", NOW) == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


class TestMissedRun:
    """A tenant runs at start-up when its last success predates its latest schedule."""

    def test_never_ran(self) -> None:
        """No success at all: run now."""
        assert missed_run("0 6 * * *", None, NOW)

    def test_ran_after_last_fire(self) -> None:
        """A success after today's 06:00: nothing missed."""
        assert not missed_run("0 6 * * *", NOW.replace(hour=6, minute=5), NOW)

    def test_ran_before_last_fire(self) -> None:
        """Last success yesterday, today's 06:00 passed while down: run now."""
        assert missed_run("0 6 * * *", NOW - dt.timedelta(days=1), NOW)


class TestHeartbeat:
    """check_heartbeat accepts only a fresh, running heartbeat of a live pid."""

    def test_fresh_running(self, tmp_path: Path) -> None:
        """A fresh heartbeat of this process is healthy."""
        path = tmp_path / "hb"
        write_heartbeat(path, Heartbeat(NOW, os.getpid(), "running", "tenants=1"))
        assert check_heartbeat(path, 30, now=NOW + dt.timedelta(seconds=5)) is None

    def test_stale(self, tmp_path: Path) -> None:
        """An old heartbeat is unhealthy, with its age."""
        path = tmp_path / "hb"
        write_heartbeat(path, Heartbeat(NOW, os.getpid(), "running", ""))
        assert "old" in (check_heartbeat(path, 30, now=NOW + dt.timedelta(minutes=5)) or "")

    def test_closed_state(self, tmp_path: Path) -> None:
        """A daemon that wrote 'closed' on exit is unhealthy at once."""
        path = tmp_path / "hb"
        write_heartbeat(path, Heartbeat(NOW, os.getpid(), "closed", ""))
        assert "closed" in (check_heartbeat(path, 30, now=NOW) or "")

    def test_missing(self, tmp_path: Path) -> None:
        """No file: unhealthy."""
        assert "no heartbeat" in (check_heartbeat(tmp_path / "none", 30, now=NOW) or "")
