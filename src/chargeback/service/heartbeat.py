"""The heartbeat file and ``chargeback check`` (STYLE habit 6).

The daemon rewrites a small JSON file every ``heartbeat_interval_s``: the time, its pid,
its state and a one-line counter summary. ``chargeback check`` reads it and exits 0
when the daemon is running and the heartbeat is fresh, 1 otherwise, for Docker's
``HEALTHCHECK`` or a Kubernetes exec probe. :class:`HeartbeatWriter` is the daemon's
side; ``/healthz`` reports the age of its last beat.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

__all__ = ["Heartbeat", "HeartbeatWriter", "check_heartbeat", "read_heartbeat", "write_heartbeat"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat as written to the file."""

    time: dt.datetime
    pid: int
    state: str
    summary: str


def write_heartbeat(path: Path, beat: Heartbeat) -> None:
    """Write ``beat`` to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = {
        "time": beat.time.isoformat(),
        "pid": beat.pid,
        "state": beat.state,
        "summary": beat.summary,
    }
    tmp.write_text(json.dumps(body) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_heartbeat(path: Path) -> Heartbeat | None:
    """Return the heartbeat in ``path``, or ``None`` if it is missing or unreadable."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return Heartbeat(
            time=dt.datetime.fromisoformat(body["time"]),
            pid=int(body["pid"]),
            state=str(body["state"]),
            summary=str(body["summary"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def check_heartbeat(path: Path, max_age_s: float, *, now: dt.datetime | None = None) -> str | None:
    """Return why the daemon is unhealthy, or ``None`` when it is healthy.

    Healthy: the file exists, says ``running``, is at most ``max_age_s`` old and its
    pid is alive.
    """
    beat = read_heartbeat(path)
    if beat is None:
        return f"no heartbeat in {path}"
    now = now or dt.datetime.now(dt.UTC)
    age = (now - beat.time).total_seconds()
    if beat.state != "running":
        return f"daemon state is {beat.state!r}"
    if age > max_age_s:
        return f"heartbeat is {age:.0f} s old (limit {max_age_s:.0f} s)"
    if not _pid_alive(beat.pid):
        return f"pid {beat.pid} is not running"
    return None


class HeartbeatPlace(Protocol):
    """Protocol: where and how often to beat (``chargeback.settings.DaemonSettings``)."""

    @property
    def heartbeat_file(self) -> Path: ...

    @property
    def heartbeat_interval_s(self) -> float: ...


class HeartbeatWriter:
    """Writes the daemon's heartbeat and logs its summary line when the line changes.

    Args:
        place: the current settings' file and interval (asked at every beat, so a
            reload's values apply).
        summary: the one-line counter summary.
        state: the daemon's state.
        clock: the current UTC time.
    """

    def __init__(
        self,
        place: Callable[[], HeartbeatPlace],
        summary: Callable[[], str],
        state: Callable[[], str],
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._place, self._summary, self._state, self._clock = place, summary, state, clock
        self._at: float | None = None
        self._last_summary = ""

    def age_s(self) -> float | None:
        """Seconds since the last beat (``None`` before the first)."""
        return None if self._at is None else round(time.monotonic() - self._at, 3)

    def beat(self) -> None:
        """Write one heartbeat now (a failure to write is logged, never raised)."""
        self._at = time.monotonic()
        line = self._summary()
        beat = Heartbeat(self._clock(), os.getpid(), self._state(), line)
        try:
            write_heartbeat(self._place().heartbeat_file, beat)
        except OSError as exc:
            log.warning("heartbeat not written", error=str(exc))
        if line != self._last_summary:
            self._last_summary = line
            log.info("heartbeat", summary=line)

    async def loop(self) -> None:
        """Beat every ``heartbeat_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self._place().heartbeat_interval_s)
            self.beat()
