"""Reconciliation: the user's proof that the allocated numbers match the bill (DESIGN §5).

:func:`build_report` asks the storage for billed vs allocated per date and product
type (one set-based query) and for the dates calculated in the range;
:func:`render_report` prints it as a fixed-width table with exact decimals.
``chargeback reconcile`` (the CLI) prints the table and exits 1 unless
:attr:`ReconcileReport.ok`: allocated equals billed, and no billing line was refused
(a line whose amount could not be taken is stored with amount 0, so the billed total
leaves it out; ``--accept-refused`` accepts such lines once the operator has looked).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from chargeback.core.money import format_amount
from chargeback.core.storage.backend import ReconcileRow, StorageBackend

__all__ = ["DateTotal", "ReconcileReport", "build_report", "render_report"]


@dataclass(frozen=True, slots=True)
class DateTotal:
    """Billed vs allocated for one date, over all product types (minor units)."""

    day: dt.date
    billed: int
    allocated: int
    lines: int
    unavailable: int = 0
    """Lines split by ``usage_unavailable`` (their usage was gone, DESIGN §13)."""

    @property
    def difference(self) -> int:
        """``allocated - billed``."""
        return self.allocated - self.billed


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """Billed vs allocated for one tenant and the days ``start <= day < end``.

    Attributes:
        tenant_id: the tenant.
        start: first day (inclusive).
        end: last day (exclusive).
        rows: one row per date and product type, ordered.
        dates: one total per date that has lines or rows, ordered.
        missing_dates: days of the range that were never calculated. They are listed
            for information and do not make the report fail: the range may reach past
            the lookback window or before the cutoff.
        unavailable: lines split by ``usage_unavailable`` per (date, product type);
            they conserve the bill, so they do not make the report fail either.
    """

    tenant_id: str
    start: dt.date
    end: dt.date
    rows: tuple[ReconcileRow, ...]
    dates: tuple[DateTotal, ...]
    missing_dates: tuple[dt.date, ...]

    accept_refused: bool = False
    """Whether refused lines are accepted (they are still listed)."""
    unavailable: Mapping[tuple[dt.date, str], int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether allocated equals billed everywhere and no line was refused (or accepted)."""
        balanced = all(row.difference == 0 for row in self.rows)
        return balanced and (self.accept_refused or self.refused_lines == 0)

    @property
    def refused_lines(self) -> int:
        """Billing lines whose amount was refused (reported, but stored as 0)."""
        return sum(row.refused for row in self.rows)

    @property
    def mismatches(self) -> tuple[ReconcileRow, ...]:
        """The rows whose allocated amount differs from the billed one."""
        return tuple(row for row in self.rows if row.difference != 0)

    @property
    def billed_total(self) -> int:
        """Sum billed over the range."""
        return sum(row.billed for row in self.rows)

    @property
    def allocated_total(self) -> int:
        """Sum allocated over the range."""
        return sum(row.allocated for row in self.rows)


async def build_report(
    storage: StorageBackend,
    tenant_id: str,
    start: dt.date,
    end: dt.date,
    *,
    accept_refused: bool = False,
) -> ReconcileReport:
    """Reconcile one tenant's stored chargeback against its stored bill.

    Args:
        storage: an open storage backend.
        tenant_id: the tenant.
        start: first day (inclusive).
        end: last day (**exclusive**, like every storage read; a CLI ``--to D``
            that means "through D" passes ``D + 1 day``).

    Raises:
        ValueError: ``end`` is before ``start``.
        StorageError: the database failed.
    """
    if end < start:
        raise ValueError(f"the reconcile range must have start <= end, got {start} > {end}")
    rows = tuple(await storage.reconcile(tenant_id, start, end))
    states = await storage.get_date_states(tenant_id, start, end)
    unavailable = await storage.unavailable_lines(tenant_id, start, end)
    per_date: dict[dt.date, list[int]] = {}
    for row in rows:
        acc = per_date.setdefault(row.day, [0, 0, 0, 0])
        acc[0] += row.billed
        acc[1] += row.allocated
        acc[2] += row.lines
        acc[3] += unavailable.get((row.day, row.product_type), 0)
    dates = tuple(DateTotal(day, b, a, n, u) for day, (b, a, n, u) in sorted(per_date.items()))
    days = (start + dt.timedelta(days=i) for i in range((end - start).days))
    missing = tuple(day for day in days if day not in states)
    return ReconcileReport(tenant_id, start, end, rows, dates, missing, accept_refused, unavailable)


_HEADER = (
    "date", "product type", "billed", "allocated", "difference", "lines",
    "usage unavailable", "refused",
)  # fmt: skip


def render_report(report: ReconcileReport) -> str:
    """Render the report as a fixed-width table with exact decimals, and a verdict line.

    The last line is ``OK: allocated equals billed for N dates`` or
    ``MISMATCH: ...`` naming how many rows and dates differ and by how much.
    """
    out = [f"tenant {report.tenant_id}: {report.start} to {report.end} (exclusive)"]
    out.extend(_table(report))
    out.extend(_notes(report))
    out.extend(_verdict(report))
    return "\n".join(out)


def _table(report: ReconcileReport) -> list[str]:
    """The header, one line per date and product type, and the total, aligned."""
    table: list[tuple[str, ...]] = [_HEADER]
    for row in report.rows:
        table.append(
            (
                row.day.isoformat(),
                row.product_type,
                format_amount(row.billed),
                format_amount(row.allocated),
                format_amount(row.difference),
                str(row.lines),
                str(report.unavailable.get((row.day, row.product_type), 0)),
                str(row.refused),
            )
        )
    billed, allocated = report.billed_total, report.allocated_total
    total = ("total", "", format_amount(billed), format_amount(allocated))
    lines = str(sum(r.lines for r in report.rows))
    lacking = str(sum(d.unavailable for d in report.dates))
    table.append(
        (*total, format_amount(allocated - billed), lines, lacking, str(report.refused_lines))
    )
    widths = [max(len(cells[i]) for cells in table) for i in range(len(_HEADER))]
    right = {2, 3, 4, 5, 6, 7}  # numbers align right

    def fmt(cells: tuple[str, ...]) -> str:
        parts = (
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [fmt(table[0]), rule, *(fmt(c) for c in table[1:-1]), rule, fmt(table[-1])]


def _notes(report: ReconcileReport) -> list[str]:
    """Dates never calculated and lines split by ``usage_unavailable``, if any."""
    out: list[str] = []
    if report.missing_dates:
        shown = ", ".join(d.isoformat() for d in report.missing_dates[:10])
        more = len(report.missing_dates) - 10
        out.append(
            f"note: {len(report.missing_dates)} dates not calculated: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    short = [d for d in report.dates if d.unavailable]
    if short:
        out.append(
            f"note: {sum(d.unavailable for d in short)} lines on {len(short)} dates were "
            "split by usage_unavailable (their usage was beyond the source's retention and "
            "never collected): "
            + ", ".join(f"{d.day} ({d.unavailable})" for d in short[:10])
            + (f" and {len(short) - 10} more dates" if len(short) > 10 else "")
        )
    return out


def _verdict(report: ReconcileReport) -> list[str]:
    """The last lines: refused lines (if any), then OK or MISMATCH."""
    out: list[str] = []
    n_dates = len(report.dates)
    if report.refused_lines:
        how = (
            "accepted (--accept-refused)"
            if report.accept_refused
            else "look at their reason on the UNALLOCATED rows, then rerun the dates once the "
            "bill is corrected, or pass --accept-refused"
        )
        out.append(
            f"REFUSED: {report.refused_lines} billing lines reported an amount that could not "
            f"be taken (stored as 0, left out of billed): {how}"
        )
    balanced = all(row.difference == 0 for row in report.rows)
    if balanced:
        out.append(f"OK: allocated equals billed for {n_dates} dates")
    else:
        billed, allocated = report.billed_total, report.allocated_total
        bad = report.mismatches
        bad_dates = len({r.day for r in bad})
        out.append(
            f"MISMATCH: {len(bad)} of {len(report.rows)} date/product rows on {bad_dates} of "
            f"{n_dates} dates differ; allocated - billed = {format_amount(allocated - billed)}"
        )
    return out
