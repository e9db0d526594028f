"""The ``csv`` emitter: one file per tenant and date, written atomically (DESIGN §8).

``{output_dir}/{tenant}/{YYYY-MM-DD}.csv`` with a header row, amounts as exact
decimals, rows in a stable order. Beside each row's ids: the names a person reads
(identity, resource, environment, as the inventory had them), the row's team
(``UNASSIGNED`` when no ownership rule matched; empty only if the date was never
attributed, which is logged), one column per declared ownership dimension, and the
currency (``USD`` for Confluent Cloud; the ``currency`` param).

The file is written to a temporary file in the same directory, flushed to disk and
renamed over the old one, so a reader sees either the whole old file or the whole new
one. A recalculated (or re-attributed) date rewrites its file. Temp files a killed
process left behind (``.{date}.csv.*.tmp``) are removed by the next write of that date
once they have been idle for a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import glob
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from chargeback.core.models import ChargebackRow
from chargeback.core.money import format_amount
from chargeback.core.ownership.attribution import DateAttribution
from chargeback.core.ownership.store import OwnershipStore
from chargeback.core.storage.backend import StorageBackend

__all__ = ["HEADER", "NAME_COLUMNS", "CsvEmitter", "make_csv_emitter"]

log = structlog.get_logger(__name__)

HEADER = (
    "tenant_id",
    "date",
    "line_id",
    "identity_id",
    "product_type",
    "product_category",
    "resource_id",
    "env_id",
    "cost_type",
    "rule",
    "amount",
    "reason",
)
"""The allocation's columns, first in every file."""
NAME_COLUMNS = ("identity_name", "resource_name", "env_name", "team")
"""Then these; then one column per declared dimension; then ``currency``."""


def _sort_key(row: ChargebackRow) -> tuple[str, str, str, str, int, str]:
    return (row.line_id, row.identity_id, row.cost_type, row.rule, row.amount, row.reason or "")


class CsvEmitter:
    """Writes one CSV file per tenant and date under ``output_dir``.

    Args:
        output_dir: the directory of the files.
        places: decimals per amount.
        currency: the currency of the amounts.
        ownership: where the dates' teams and names are read (``None``: those columns
            stay empty).
    """

    __slots__ = ("currency", "output_dir", "ownership", "places")

    def __init__(
        self,
        output_dir: Path,
        *,
        places: int = 9,
        currency: str = "USD",
        ownership: OwnershipStore | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.places = places
        self.currency = currency
        self.ownership = ownership

    def path_for(self, tenant_id: str, day: dt.date) -> Path:
        """Return the file a tenant-date is written to.

        Raises:
            ValueError: the tenant id could escape the output directory.
        """
        if not tenant_id or tenant_id in {".", ".."} or "/" in tenant_id or os.sep in tenant_id:
            raise ValueError(f"tenant id {tenant_id!r} cannot be used as a directory name")
        return self.output_dir / tenant_id / f"{day.isoformat()}.csv"

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        """Write the date's rows, replacing the file atomically (off the event loop)."""
        path = self.path_for(tenant_id, day)
        att = None
        if self.ownership is not None:
            att = await self.ownership.read_attribution(tenant_id, day)
            if att is None:
                log.warning("csv written without teams: date not attributed", date=str(day))
        await asyncio.to_thread(self._write, path, rows, att)

    def _write(
        self, path: Path, rows: Sequence[ChargebackRow], att: DateAttribution | None
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                self._write_rows(csv.writer(fh), rows, att)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        _fsync_dir(path.parent)
        _remove_stale_temps(path)

    def _write_rows(
        self, writer: Any, rows: Sequence[ChargebackRow], att: DateAttribution | None
    ) -> None:
        dims = att.dimension_keys if att is not None else ()
        writer.writerow((*HEADER, *NAME_COLUMNS, *dims, "currency"))
        names: Mapping[str, str] = att.names if att is not None else {}
        name = names.get
        places, currency = self.places, self.currency
        for r in sorted(rows, key=_sort_key):
            team: tuple[str, ...] = ("",) + ("",) * len(dims)
            if att is not None:
                d = att.decision_of(r.identity_id, r.resource_id, r.env_id)
                given = dict(d.dimensions)
                team = (d.team, *(given.get(k, "") for k in dims))
            writer.writerow(
                (
                    r.tenant_id,
                    r.date.isoformat(),
                    r.line_id,
                    r.identity_id,
                    r.product_type,
                    r.product_category,
                    r.resource_id or "",
                    r.env_id or "",
                    r.cost_type,
                    r.rule,
                    format_amount(r.amount, places),
                    r.reason or "",
                    name(r.identity_id, ""),
                    name(r.resource_id or "", ""),
                    name(r.env_id or "", ""),
                    *team,
                    currency,
                )
            )


STALE_TEMP_S = 60.0
"""A temp file of a date not written to for this long was left by a killed writer."""


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path`` that a killed process left behind.

    A live writer touches its temp file continuously, so only files idle for
    :data:`STALE_TEMP_S` are removed (never another process's write in progress).
    """
    cutoff = time.time() - STALE_TEMP_S
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def make_csv_emitter(
    output_dir: str,
    places: int = 9,
    currency: str = "USD",
    *,
    storage_backend: StorageBackend | None = None,
) -> CsvEmitter:
    """Factory for the ``csv`` emitter type (YAML ``params: {output_dir: ...}``).

    Args:
        output_dir: the directory that receives ``{tenant}/{date}.csv``.
        places: decimals printed per amount (9 = exact minor units).
        currency: the ISO 4217 code written on every row (Confluent Cloud bills in USD).
        storage_backend: where the teams and names are read (given by the registry).
    """
    if not 0 <= places <= 9:
        raise ValueError(f"places must be between 0 and 9, got {places}")
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise ValueError(f"currency must be an ISO 4217 code such as USD, got {currency!r}")
    ownership = None
    if storage_backend is not None:
        from chargeback.core.storage.ownership import ownership_store  # noqa: PLC0415

        try:
            ownership = ownership_store(storage_backend)
        except TypeError:  # a third-party backend without attributions: no team columns
            ownership = None
    return CsvEmitter(Path(output_dir), places=places, currency=currency, ownership=ownership)


make_csv_emitter.needs_storage_backend = True  # type: ignore[attr-defined]
