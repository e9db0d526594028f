"""Write one tenant's FOCUS dataset for a month or a day: streamed, atomic, summed.

A dataset is read one calculated date at a time (its stored billing lines and
chargeback rows, :meth:`~chargeback.core.storage.backend.StorageBackend.read_lines` and
``read_rows``), turned into FOCUS rows and appended to a temporary file in the target's
directory, which is flushed, synced and renamed over the target at the end: a reader
sees the whole old dataset or the whole new one, and memory holds one date, never the
month.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from chargeback.core.emitters.csv import _fsync_dir, _remove_stale_temps
from chargeback.core.emitters.focus.columns import VERSIONS
from chargeback.core.emitters.focus.records import ExportContext, focus_rows, month_bounds
from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.storage.backend import StorageBackend

__all__ = [
    "PARQUET_SUFFIX",
    "CsvSink",
    "ExportResult",
    "FocusOptions",
    "build_context",
    "calculated_days",
    "export_days",
    "export_month",
    "parse_month",
    "statuses",
]

BILLED_COLUMN = "BilledCost"
PARQUET_SUFFIX = ".parquet"
"""A dataset file with this suffix is written as Parquet."""
_BATCH = 2000
"""Rows joined into one write."""


@dataclass(frozen=True, slots=True)
class FocusOptions:
    """How a FOCUS dataset is written.

    Attributes:
        version: ``"1.2"`` or ``"1.3"``.
        currency: ``BillingCurrency``.
        billing_account_id: ``BillingAccountId``; ``None``: the organization id found in
            the inventory (a resource's ``org_id``), else the tenant id.
        billing_account_name: ``BillingAccountName``; ``None``: the tenant id.
    """

    version: str = "1.3"
    currency: str = "USD"
    billing_account_id: str | None = None
    billing_account_name: str | None = None

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(
                f"FOCUS version must be one of {', '.join(VERSIONS)}, got {self.version!r}"
            )
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(
                f"currency must be an ISO 4217 code such as USD, got {self.currency!r}"
            )


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What one written dataset holds: its file, dates, rows and ``BilledCost`` total (nanos)."""

    path: Path
    days: tuple[dt.date, ...]
    rows: int
    billed_total: int


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` -> the first day of that month.

    Raises:
        ValueError: not a ``YYYY-MM`` month.
    """
    try:
        first = dt.date.fromisoformat(f"{text}-01")
    except ValueError as exc:
        raise ValueError(f"month {text!r} is not YYYY-MM (e.g. 2026-11)") from exc
    if len(text) != 7:
        raise ValueError(f"month {text!r} is not YYYY-MM (e.g. 2026-11)")
    return first


async def build_context(
    storage: StorageBackend,
    tenant_id: str,
    options: FocusOptions,
    *,
    day_status: Mapping[dt.date, str] | None = None,
    month_status: Mapping[dt.date, str] | None = None,
) -> ExportContext:
    """The export context of a tenant: its inventory, account and period statuses."""
    resources, identities = await storage.load_inventory(tenant_id)
    account = options.billing_account_id or next(
        (r.attributes["org_id"] for r in resources if r.attributes.get("org_id")), tenant_id
    )
    return ExportContext(
        tenant_id=tenant_id,
        version=options.version,
        currency=options.currency,
        billing_account_id=account,
        billing_account_name=options.billing_account_name or tenant_id,
        resources={r.resource_id: r for r in resources},
        identities={i.identity_id: i for i in identities},
        day_status=day_status or {},
        month_status=month_status or {},
    )


class Sink(Protocol):
    """Where a dataset's rows go: a CSV or a Parquet file."""

    quoted: bool
    """Whether the rows' cells come as CSV fields (:class:`~.parts.PartWriter`)."""
    batch_rows: int
    """Rows handed to :meth:`write` at a time."""

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """Append ``rows``."""
        ...

    def close(self) -> None:
        """Finish the file (the caller flushes and syncs it)."""
        ...


class CsvSink:
    """Appends rows of CSV fields to a text file, after the header."""

    quoted = True
    batch_rows = _BATCH

    def __init__(self, fh: IO[str], columns: Sequence[str]) -> None:
        self._fh = fh
        csv.writer(fh, lineterminator="\n").writerow(columns)

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """Append ``rows``: each one ``join``, the batch one write."""
        self._fh.write("\n".join(map(",".join, rows)) + "\n")

    def close(self) -> None:
        """Nothing to finish."""


def _open_sink(fd: int, columns: Sequence[str], *, parquet: bool) -> tuple[IO[Any], Sink]:
    """The open temp file ``fd`` and the sink writing the dataset into it."""
    if not parquet:
        text = os.fdopen(fd, "w", newline="", encoding="utf-8")
        return text, CsvSink(text, columns)
    # pyarrow is imported when a Parquet dataset is written, not by every process that
    # loads the emitters (~40 MB and a few hundred ms).
    from chargeback.core.emitters.focus.parquet import ParquetSink  # noqa: PLC0415

    binary = os.fdopen(fd, "wb")
    try:
        return binary, ParquetSink(binary, columns)
    except BaseException:
        binary.close()
        raise


def _write_day(
    sink: Sink,
    ctx: ExportContext,
    lines: Sequence[BillingLineItem],
    rows: Sequence[ChargebackRow],
) -> tuple[int, int]:
    """Append one date's rows; return ``(rows written, BilledCost total in nanos)``.

    Rows go to ``sink`` in batches of its ``batch_rows``.
    """
    count = 0
    batch: list[list[str]] = []
    size = sink.batch_rows
    for record in focus_rows(ctx, lines, rows, quoted=sink.quoted):
        batch.append(record)
        if len(batch) == size:
            sink.write(batch)
            count += len(batch)
            batch = []
    if batch:
        sink.write(batch)
        count += len(batch)
    with_rows = {r.line_id for r in rows}
    unrowed = sum(line.amount for line in lines if line.line_id not in with_rows)
    return count, sum(r.amount for r in rows) + unrowed


async def _read_day(
    storage: StorageBackend, tenant_id: str, day: dt.date
) -> tuple[list[BillingLineItem], list[ChargebackRow]]:
    return await storage.read_lines(tenant_id, day), await storage.read_rows(tenant_id, day)


async def export_days(
    storage: StorageBackend,
    ctx: ExportContext,
    days: Iterable[dt.date],
    path: Path,
) -> ExportResult:
    """Write the FOCUS rows of ``days`` (calculated dates of ``ctx.tenant_id``) to ``path``:
    Parquet when its suffix is ``.parquet`` (:mod:`.parquet`), else CSV.

    Atomic: a temp file beside ``path`` is renamed over it when complete; on any error
    the temp file is removed and ``path`` keeps its old content.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written: list[dt.date] = []
    rows_total = billed_total = 0
    parquet = path.suffix == PARQUET_SUFFIX
    try:
        fh, sink = _open_sink(fd, ctx.columns, parquet=parquet)
        with fh:
            ordered = sorted(days)
            # The next date is read while this one is written: two dates in memory at most.
            ahead = (
                asyncio.create_task(_read_day(storage, ctx.tenant_id, ordered[0]))
                if ordered
                else None
            )
            try:
                for i, day in enumerate(ordered):
                    assert ahead is not None  # noqa: S101  (one read per date)
                    lines, rows = await ahead
                    ahead = None
                    if i + 1 < len(ordered):
                        ahead = asyncio.create_task(
                            _read_day(storage, ctx.tenant_id, ordered[i + 1])
                        )
                    n, billed = await asyncio.to_thread(_write_day, sink, ctx, lines, rows)
                    rows_total += n
                    billed_total += billed
                    written.append(day)
            finally:
                if ahead is not None:
                    ahead.cancel()
                    await asyncio.gather(ahead, return_exceptions=True)
            await asyncio.to_thread(sink.close)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    _remove_stale_temps(path)
    return ExportResult(path, tuple(written), rows_total, billed_total)


async def statuses(
    storage: StorageBackend, tenant_id: str, start: dt.date, end: dt.date
) -> tuple[dict[dt.date, str], dict[dt.date, str]]:
    """Day statuses of ``start <= day < end`` and their months' (``open`` / ``closed``).

    A month is closed when every one of its synced days is; a day never synced (no
    run since it was calculated) counts as open.
    """
    days = await storage.period_statuses(tenant_id, start, end)
    months: dict[dt.date, str] = {}
    for day, status in days.items():
        first = day.replace(day=1)
        months[first] = "closed" if status == "closed" and months.get(first) != "open" else "open"
    return days, months


async def export_month(
    storage: StorageBackend, tenant_id: str, month: dt.date, path: Path, options: FocusOptions
) -> ExportResult:
    """Write the FOCUS dataset of ``tenant_id``'s billing period ``month`` to ``path``.

    Raises:
        ValueError: the month has no calculated date.
    """
    first, nxt = month_bounds(month)
    days = await calculated_days(storage, tenant_id, first)
    if not days:
        raise ValueError(
            f"tenant {tenant_id!r} has no calculated date in {first:%Y-%m}; nothing to export"
        )
    day_status, month_status = await statuses(storage, tenant_id, first, nxt)
    ctx = await build_context(
        storage, tenant_id, options, day_status=day_status, month_status=month_status
    )
    return await export_days(storage, ctx, days, path)


async def calculated_days(storage: StorageBackend, tenant_id: str, month: dt.date) -> list[dt.date]:
    """The calculated dates of ``month``'s billing period, ascending."""
    first, nxt = month_bounds(month)
    return sorted(await storage.get_date_states(tenant_id, first, nxt))
