"""Windows and steps of a read query (DESIGN §15), in the spirit of OpenCost's allocation API.

A window is a range of UTC days. Internally it is half-open (``start <= day < end``,
as storage reads it); on the wire both days are inclusive::

    2026-11-01,2026-11-30   both days included
    2026-11-05              one day
    2026-11                 one calendar month
    7d                      the last 7 days, today included
    today, yesterday
    month                   from the 1st of this month to today
    lastmonth               the previous calendar month

A step cuts a window into buckets: ``1d`` (days), ``1w`` (ISO weeks, Monday first) and
``1mo`` (calendar months); the first and last bucket are clipped to the window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from chargeback.errors import QueryError

__all__ = ["MAX_WINDOW_DAYS", "Step", "Window", "parse_step", "parse_window"]

MAX_WINDOW_DAYS = 3660
"""The longest window a query may ask for (ten years)."""

_ONE_DAY = dt.timedelta(days=1)
_DAYS_RE = re.compile(r"^(\d{1,4})d$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class Window:
    """The days ``start <= day < end`` (UTC).

    Attributes:
        start: the first day.
        end: the day after the last.
    """

    start: dt.date
    end: dt.date

    @property
    def last(self) -> dt.date:
        """The last day (inclusive)."""
        return self.end - _ONE_DAY

    @property
    def days(self) -> int:
        """How many days the window holds."""
        return (self.end - self.start).days

    def dates(self) -> Iterator[dt.date]:
        """Every day of the window, in order."""
        day = self.start
        while day < self.end:
            yield day
            day += _ONE_DAY

    def to_wire(self) -> dict[str, str]:
        """The window as an API answer shows it (both days inclusive)."""
        return {"start": self.start.isoformat(), "end": self.last.isoformat()}


class Step(StrEnum):
    """How a window is cut into sets."""

    DAY = "1d"
    WEEK = "1w"
    MONTH = "1mo"

    def buckets(self, window: Window) -> list[Window]:
        """Cut ``window`` into consecutive buckets (the first and last clipped)."""
        out: list[Window] = []
        start = window.start
        while start < window.end:
            end = min(self._next_boundary(start), window.end)
            out.append(Window(start, end))
            start = end
        return out

    def _next_boundary(self, day: dt.date) -> dt.date:
        if self is Step.DAY:
            return day + _ONE_DAY
        if self is Step.WEEK:
            return day + dt.timedelta(days=7 - day.weekday())
        return _first_of_next_month(day)


def _first_of_next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + 1, 1, 1) if day.month == 12 else dt.date(day.year, day.month + 1, 1)


def _month(year: int, month: int) -> Window:
    first = dt.date(year, month, 1)
    return Window(first, _first_of_next_month(first))


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(
            f"window: expected a date YYYY-MM-DD, got {text.strip()!r}", parameter="window"
        ) from None


def _relative(text: str, today: dt.date) -> Window | None:
    """The named windows relative to ``today``; ``None`` when ``text`` is none of them."""
    if text == "today":
        return Window(today, today + _ONE_DAY)
    if text == "yesterday":
        return Window(today - _ONE_DAY, today)
    if text == "month":
        return Window(today.replace(day=1), today + _ONE_DAY)
    if text == "lastmonth":
        last = today.replace(day=1) - _ONE_DAY
        return _month(last.year, last.month)
    days = _DAYS_RE.match(text)
    if days:
        n = int(days.group(1))
        if n < 1:
            raise QueryError("window: a number of days must be at least 1d", parameter="window")
        return Window(today - dt.timedelta(days=n - 1), today + _ONE_DAY)
    return None


def parse_window(text: str, today: dt.date) -> Window:
    """Parse a window (see the module docstring); relative forms count back from ``today``.

    Raises:
        QueryError: the text is none of the forms, the end is before the start, or the
            window is longer than :data:`MAX_WINDOW_DAYS`.
    """
    text = text.strip().lower()
    window = _relative(text, today)
    if window is None:
        month = _MONTH_RE.match(text)
        if month and 1 <= int(month.group(2)) <= 12:
            window = _month(int(month.group(1)), int(month.group(2)))
        elif "," in text:
            first, _, last = text.partition(",")
            window = Window(_date(first), _date(last) + _ONE_DAY)
        elif re.match(r"^\d{4}-\d{2}-\d{2}$", text):
            day = _date(text)
            window = Window(day, day + _ONE_DAY)
        else:
            raise QueryError(
                f"window: expected START,END (dates, both included), YYYY-MM-DD, YYYY-MM, Nd, "
                f"today, yesterday, month or lastmonth, got {text!r}",
                parameter="window",
            )
    if window.end <= window.start:
        raise QueryError(
            f"window: the end {window.last} is before the start {window.start}", parameter="window"
        )
    if window.days > MAX_WINDOW_DAYS:
        raise QueryError(
            f"window: {window.days} days is longer than the {MAX_WINDOW_DAYS} allowed",
            parameter="window",
        )
    return window


def parse_step(text: str | None) -> Step | None:
    """Parse a step (``1d``, ``1w``, ``1mo``; ``None`` or empty: the whole window).

    Raises:
        QueryError: any other text.
    """
    if text is None or not text.strip():
        return None
    try:
        return Step(text.strip().lower())
    except ValueError:
        raise QueryError(
            f"step: expected one of 1d, 1w, 1mo, got {text!r}", parameter="step"
        ) from None
