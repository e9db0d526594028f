"""Hold a run's billing lines and usage compactly until their date is allocated.

A backfill fetches every pending date's billing (in ≤ 30-day windows) and every
usage metric for the whole range (one query per metric and resource set, DESIGN §10)
before the first date is allocated. Kept as Python objects that costs ~1.5 KB per
billing line and ~2 KB per resource-day of usage: 0.75 GB for 90 days of a large
organization, growing with every day of lookback. The spools keep them pickled and
zlib-compressed per date instead (~5-10 % of that), and hand one date back as
objects when it is allocated; so memory stays flat as the number of days grows.

The first ``keep_lines`` lines stay objects: a daily run (a few dates) never packs,
and a backfill packs only what exceeds the budget. Billing arrives oldest window
first and dates are allocated oldest first, so the lines kept as objects are the
first ones needed.

Lines that cannot be pickled (a third-party cost input's attributes of an unpicklable
type) are kept as objects; nothing is ever dropped or changed.
"""

from __future__ import annotations

import datetime as dt
import pickle
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from chargeback.core.engine.dates import BillingDigest
from chargeback.core.models import BillingLineItem, MetricQuery, UsageTable

__all__ = ["LineSpool", "UsageSpool"]

_CHUNK = 1000
"""Lines of one date buffered as objects before they are packed."""

_LEVEL = 1
"""zlib level: the fastest; pickled lines still compress ~5x."""

KEEP_LINES = 20_000
"""Lines kept as objects before packing starts (~30 MB at ~1.5 KB a line)."""


def _pack(value: object) -> bytes | None:
    try:
        return zlib.compress(pickle.dumps(value, pickle.HIGHEST_PROTOCOL), _LEVEL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


def _unpack(blob: bytes) -> object:
    # Only bytes this process packed a moment ago: never external input.
    return pickle.loads(zlib.decompress(blob))  # noqa: S301


class LineSpool:
    """The billing lines of a run's dates, packed per date, with each date's digest.

    Args:
        needs: returns the metric queries (with resource ids) some lines need; called
            once per sealed chunk, so the usage each date needs is known without the
            lines.
        keep_lines: how many lines stay objects before chunks are packed.
    """

    def __init__(
        self,
        needs: Callable[[Iterable[BillingLineItem]], dict[MetricQuery, set[str]]],
        *,
        keep_lines: int = KEEP_LINES,
    ) -> None:
        self._needs_of = needs
        self._keep = keep_lines
        self._open: dict[dt.date, list[BillingLineItem]] = defaultdict(list)
        self._packed: dict[dt.date, list[bytes | list[BillingLineItem]]] = defaultdict(list)
        self._digests: dict[dt.date, BillingDigest] = defaultdict(BillingDigest)
        self._needs: dict[dt.date, dict[MetricQuery, set[str]]] = defaultdict(dict)

    def add(self, line: BillingLineItem) -> None:
        """Take one line of its date."""
        day = line.date
        self._digests[day].add(line)
        chunk = self._open[day]
        chunk.append(line)
        if len(chunk) >= _CHUNK:
            self._seal(day)

    def _seal(self, day: dt.date) -> None:
        chunk = self._open.pop(day, None)
        if not chunk:
            return
        needs = self._needs[day]
        for query, resources in self._needs_of(chunk).items():
            needs.setdefault(query, set()).update(resources)
        if self._keep >= len(chunk):
            self._keep -= len(chunk)
            self._packed[day].append(chunk)
            return
        packed = _pack(chunk)
        self._packed[day].append(chunk if packed is None else packed)

    def finish(self) -> None:
        """Pack what is still buffered (call once the stream has ended)."""
        for day in list(self._open):
            self._seal(day)

    def fingerprint(self, day: dt.date) -> str:
        """The order-independent digest of the date's lines (of no lines, if none came)."""
        digest = self._digests.get(day)
        return (digest or BillingDigest()).hexdigest()

    def count(self, day: dt.date) -> int:
        """How many lines the date has."""
        digest = self._digests.get(day)
        return 0 if digest is None else digest.count

    def needs(self, days: Iterable[dt.date]) -> dict[MetricQuery, set[str]]:
        """The metric queries (with resource ids) the lines of ``days`` need."""
        merged: dict[MetricQuery, set[str]] = {}
        for day in days:
            for query, resources in self._needs.get(day, {}).items():
                merged.setdefault(query, set()).update(resources)
        return merged

    def discard(self, day: dt.date) -> None:
        """Forget the date's lines without unpacking them (a date left unchanged)."""
        self._open.pop(day, None)
        self._packed.pop(day, None)

    def pop(self, day: dt.date) -> list[BillingLineItem]:
        """Return the date's lines in arrival order and forget them."""
        self._seal(day)
        lines: list[BillingLineItem] = []
        for part in self._packed.pop(day, []):
            if isinstance(part, bytes):
                unpacked = _unpack(part)
                assert isinstance(unpacked, list)  # noqa: S101  (we packed a list)
                lines.extend(unpacked)
            else:
                lines.extend(part)
        return lines


class UsageSpool:
    """Usage tables of a run, packed per date as they arrive, handed back per date."""

    def __init__(self) -> None:
        self._packed: dict[dt.date, list[bytes]] = defaultdict(list)
        self._queries: dict[MetricQuery, None] = {}  # an ordered set: chunks add a query again

    def add(
        self, query: MetricQuery, table: Mapping[tuple[dt.date, str], Mapping[str, int]]
    ) -> None:
        """Take one query's table (every date of the range) and pack it by date."""
        self._queries[query] = None
        by_day: dict[dt.date, dict[tuple[dt.date, str], Mapping[str, int]]] = defaultdict(dict)
        for key, values in table.items():
            by_day[key[0]][key] = values  # packed (copied) below, not kept
        for day, part in by_day.items():
            blob = _pack((query, part))
            if blob is None:  # pragma: no cover - dicts of dates, str and int always pickle
                raise TypeError(f"usage of {query.metric} for {day} cannot be packed")
            self._packed[day].append(blob)

    def pop(self, day: dt.date) -> dict[MetricQuery, UsageTable]:
        """Return every query's table restricted to ``day`` (empty for no usage)."""
        tables: dict[MetricQuery, UsageTable] = {q: {} for q in self._queries}
        for blob in self._packed.pop(day, []):
            unpacked = _unpack(blob)
            assert isinstance(unpacked, tuple)  # noqa: S101  (we packed a tuple)
            query: MetricQuery = unpacked[0]
            part: UsageTable = unpacked[1]
            tables[query].update(part)
        return tables
