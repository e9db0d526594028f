"""Which dates get work (DESIGN §4): the window, fingerprints, and the two selections.

A run first decides which dates need a **billing fetch** (cheap to decide, from
stored state only), then, with the fetched lines in hand, which of those need a new
**allocation** (their inputs changed). Everything else costs no API call and no write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from chargeback.core.jsontext import compact
from chargeback.core.models import BillingLineItem
from chargeback.core.storage.backend import DateState, RerunRequest

__all__ = [
    "BillingDigest",
    "DateWindow",
    "Span",
    "billing_fingerprint",
    "dates_to_allocate",
    "dates_to_fetch",
    "rerun_dates",
    "settings_fingerprint",
    "spans",
    "window",
]


@dataclass(frozen=True, slots=True)
class DateWindow:
    """The days a run considers, ``first <= day <= last`` (UTC), and its recalc part.

    Attributes:
        first: oldest day (``today - lookback_days``).
        last: newest day (``today - cutoff_days``).
        recalc_first: oldest day of the recalculation window (``last - recalc_days + 1``).
    """

    first: dt.date
    last: dt.date
    recalc_first: dt.date

    def days(self) -> list[dt.date]:
        """Every day of the window, ascending (empty if ``first > last``)."""
        n = (self.last - self.first).days + 1
        return [self.first + dt.timedelta(days=i) for i in range(max(n, 0))]

    def in_recalc(self, day: dt.date) -> bool:
        """Return whether ``day`` is inside the recalculation window."""
        return self.recalc_first <= day <= self.last


def window(today: dt.date, lookback_days: int, cutoff_days: int, recalc_days: int) -> DateWindow:
    """Compute a run's window from today's UTC date and the tenant's settings."""
    last = today - dt.timedelta(days=cutoff_days)
    first = today - dt.timedelta(days=lookback_days)
    return DateWindow(
        first=first, last=last, recalc_first=last - dt.timedelta(days=recalc_days - 1)
    )


def rerun_dates(requests: Iterable[RerunRequest], last: dt.date) -> set[dt.date]:
    """Return the days operators asked to recalculate, up to ``last`` (settled days only)."""
    out: set[dt.date] = set()
    for req in requests:
        day = req.start
        end = min(req.end, last)
        while day <= end:
            out.add(day)
            day += dt.timedelta(days=1)
    return out


class Span(NamedTuple):
    """The days ``start <= day < end``."""

    start: dt.date
    end: dt.date


def spans(days: Sequence[dt.date], max_gap: int = 7) -> list[Span]:
    """Group sorted days into ``[start, end)`` spans, splitting where the gap exceeds ``max_gap``.

    One billing fetch per span: a far-away rerun date does not pull in every day between.
    """
    out: list[Span] = []
    for day in sorted(days):
        next_day = day + dt.timedelta(days=1)
        if out and (day - out[-1].end).days < max_gap:
            out[-1] = out[-1]._replace(end=next_day)
        else:
            out.append(Span(day, next_day))
    return out


def _canon(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_canon(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def _line_tuple(line: BillingLineItem) -> tuple[object, ...]:
    return (
        line.line_id,
        line.date.isoformat(),
        line.product_type,
        line.product_category,
        line.amount,
        line.resource_id,
        line.env_id,
        None if line.quantity is None else str(line.quantity),
        line.unit,
        None if line.unit_price is None else str(line.unit_price),
        line.original_amount,
        line.discount_amount,
        line.description,
        sorted(line.attributes.items()),
        line.error,
    )


class BillingDigest:
    """An order-independent digest of one date's lines, built one line at a time.

    Each line's canonical JSON is hashed (sha256) and the digests are added modulo
    2**256: the sum of a multiset does not depend on the order of its elements, so
    the lines of a date can stream in any order and need not be kept. Any change of
    any field of any line, or a line more or less, changes the digest.
    """

    __slots__ = ("_count", "_sum")

    def __init__(self) -> None:
        self._count = 0
        self._sum = 0

    def add(self, line: BillingLineItem) -> None:
        """Fold one line in."""
        text = compact(_line_tuple(line))  # = json.dumps(..., separators=(",", ":"))
        self._sum = (self._sum + int.from_bytes(hashlib.sha256(text.encode()).digest())) & _MASK
        self._count += 1

    @property
    def count(self) -> int:
        """How many lines were added."""
        return self._count

    def hexdigest(self) -> str:
        """The digest of the lines added so far (sha256 hex)."""
        payload = f"billing-v2:{self._count}:{self._sum:064x}"
        return hashlib.sha256(payload.encode()).hexdigest()


_MASK = (1 << 256) - 1


def billing_fingerprint(lines: Iterable[BillingLineItem]) -> str:
    """Digest of one date's lines, independent of their order (sha256 hex)."""
    digest = BillingDigest()
    for line in lines:
        digest.add(line)
    return digest.hexdigest()


_NOT_ALLOCATION = re.compile(
    r"(^|_)(key|secret|password|token|credentials?|url|urls|host|port|timeout.*|"
    r"concurrency|rate_limit.*|retries|retry.*|page_size)$"
)
"""Top-level plugin_settings keys that never change how cost is split (connection settings)."""


def settings_fingerprint(plugin_settings: Mapping[str, object]) -> str:
    """Digest of the allocation-relevant part of ``plugin_settings`` (sha256 hex).

    Connection settings (credentials, URLs, timeouts, retry and rate limits; see
    :data:`_NOT_ALLOCATION`) are left out, so rotating a key or moving a URL does not
    recalculate every date; any other change does.
    """
    relevant = {
        k: v
        for k, v in plugin_settings.items()
        if not _NOT_ALLOCATION.search(str(k)) and not hasattr(v, "get_secret_value")
    }
    text = json.dumps(_canon(relevant), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def dates_to_fetch(
    win: DateWindow,
    states: Mapping[dt.date, DateState],
    *,
    reruns: set[dt.date],
    settings_fp: str,
) -> list[dt.date]:
    """Return the dates whose billing must be fetched this run, ascending.

    A date is fetched when it was never calculated, lies in the recalculation
    window, was asked for by an operator, or was calculated with other settings.
    Rerun dates older than the window are included (an operator asked for them).
    """
    out: set[dt.date] = set(reruns)
    for day in win.days():
        state = states.get(day)
        if state is None or win.in_recalc(day) or state.settings_fingerprint != settings_fp:
            out.add(day)
    return sorted(out)


def dates_to_allocate(
    fetched: Sequence[dt.date],
    states: Mapping[dt.date, DateState],
    *,
    billing_fps: Mapping[dt.date, str],
    inventory_fp: str,
    settings_fp: str,
    reruns: set[dt.date],
    win: DateWindow,
) -> list[dt.date]:
    """Return the fetched dates whose inputs changed since their last calculation.

    A date is allocated when it was never calculated, its billing changed, an
    operator asked for it, the settings changed, or it lies in the recalculation
    window and the inventory changed.
    """
    out: list[dt.date] = []
    for day in sorted(fetched):
        state = states.get(day)
        if (
            state is None
            or day in reruns
            or state.billing_fingerprint != billing_fps[day]
            or state.settings_fingerprint != settings_fp
            or (win.in_recalc(day) and state.inventory_fingerprint != inventory_fp)
        ):
            out.append(day)
    return out
