"""The simulator's notion of "now".

The real server follows the wall clock unless started with ``--now``; tests pin and
move a :class:`SimClock` to exercise late billing data.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """A clock that is either frozen at a settable instant or follows the wall clock.

    Args:
        now: the frozen instant (timezone-aware, or naive meaning UTC). ``None``
            follows the wall clock.
    """

    def __init__(self, now: datetime | None = None) -> None:
        self._frozen: datetime | None = _utc(now) if now is not None else None

    @property
    def frozen(self) -> bool:
        """True when the clock does not follow the wall clock."""
        return self._frozen is not None

    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC)

    def today(self) -> date:
        """The current UTC date."""
        return self.now().date()

    def set(self, now: datetime) -> None:
        """Freeze the clock at *now*."""
        self._frozen = _utc(now)

    def advance(self, delta: timedelta) -> None:
        """Move a frozen clock forward by *delta* (freezing a wall clock first)."""
        self._frozen = self.now() + delta


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
