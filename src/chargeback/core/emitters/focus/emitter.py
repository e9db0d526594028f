"""The ``focus`` emitter: FOCUS datasets per tenant and billing period (DESIGN §16).

Layout under ``output_dir`` (``.parquet`` for ``format: parquet``)::

    {tenant}/{YYYY-MM}.csv                  the month's dataset (every calculated date)
    {tenant}/{YYYY-MM}.daily/{date}.csv     one date's rows, while the month is open
    {tenant}/.{YYYY-MM}.manifest.json       what the month's dataset was built from

Each emitted date (every commit, every recalculation) rewrites its daily partial file
while its month is open. The month datasets are written at the end of a run
(:meth:`FocusEmitter.finish`): every month whose dates' ``calc_seq`` or period status
differ from its manifest is rewritten, once per run however many of its dates were
recalculated, so a 30-day backfill writes each month once, and a crash between an
emission and the month's rewrite is repaired by the next run. When a month closes its
daily partials are removed. All files are written atomically (temp file + rename).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from chargeback.core.emitters.focus.export import (
    ExportResult,
    FocusOptions,
    build_context,
    export_days,
    statuses,
)
from chargeback.core.emitters.focus.records import month_bounds
from chargeback.core.models import ChargebackRow
from chargeback.core.storage.backend import StorageBackend

__all__ = ["FocusEmitter", "make_focus_emitter"]

log = structlog.get_logger(__name__)

FORMATS = ("csv", "parquet")
"""Dataset formats written (Parquet: :mod:`.parquet`)."""


def _month_key(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


class FocusEmitter:
    """Writes FOCUS datasets for every tenant under ``output_dir``.

    Args:
        output_dir: the root directory.
        storage: the backend the datasets are read from.
        options: version, currency and account columns.
        format: ``csv`` or ``parquet``: the files' format and suffix.
    """

    def __init__(
        self,
        output_dir: Path,
        storage: StorageBackend,
        options: FocusOptions,
        *,
        format: str = "csv",  # the YAML param's name
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
        self.output_dir = output_dir
        self.storage = storage
        self.options = options
        self.suffix = f".{format}"

    def tenant_dir(self, tenant_id: str) -> Path:
        """The directory of a tenant's datasets.

        Raises:
            ValueError: the tenant id could escape the output directory.
        """
        if not tenant_id or tenant_id in {".", ".."} or "/" in tenant_id or os.sep in tenant_id:
            raise ValueError(f"tenant id {tenant_id!r} cannot be used as a directory name")
        return self.output_dir / tenant_id

    def month_path(self, tenant_id: str, month: dt.date) -> Path:
        """The month dataset's file."""
        return self.tenant_dir(tenant_id) / f"{_month_key(month)}{self.suffix}"

    def daily_path(self, tenant_id: str, day: dt.date) -> Path:
        """A date's partial file (written while its month is open)."""
        daily = self.tenant_dir(tenant_id) / f"{_month_key(day)}.daily"
        return daily / f"{day.isoformat()}{self.suffix}"

    def _manifest_path(self, tenant_id: str, month: dt.date) -> Path:
        return self.tenant_dir(tenant_id) / f".{_month_key(month)}.manifest.json"

    async def __call__(
        self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow], /
    ) -> None:
        """Rewrite ``day``'s partial file while its month is open (the month waits for
        :meth:`finish`)."""
        first, nxt = month_bounds(day)
        day_status, month_status = await statuses(self.storage, tenant_id, first, nxt)
        if month_status.get(first, "open") == "closed":
            return
        ctx = await build_context(
            self.storage, tenant_id, self.options, day_status=day_status, month_status=month_status
        )
        await export_days(self.storage, ctx, [day], self.daily_path(tenant_id, day))

    async def finish(self, tenant_id: str) -> list[ExportResult]:
        """Rewrite every month dataset of the tenant that is out of date; return them."""
        states = await self.storage.get_date_states(tenant_id, dt.date.min, dt.date.max)
        if not states:
            return []
        day_status, month_status = await statuses(self.storage, tenant_id, dt.date.min, dt.date.max)
        by_month: dict[dt.date, dict[str, object]] = {}
        for day, state in sorted(states.items()):
            entry = by_month.setdefault(day.replace(day=1), {})
            entry[day.isoformat()] = [state.calc_seq, day_status.get(day, "open")]
        written: list[ExportResult] = []
        ctx = None
        for month, manifest in sorted(by_month.items()):
            status = month_status.get(month, "open")
            wanted = {"version": self.options.version, "status": status, "days": manifest}
            if (
                self._read_manifest(tenant_id, month) == wanted
                and self.month_path(tenant_id, month).exists()
            ):
                continue
            if ctx is None:
                ctx = await build_context(
                    self.storage, tenant_id, self.options,
                    day_status=day_status, month_status=month_status,
                )  # fmt: skip
            days = [dt.date.fromisoformat(d) for d in manifest]
            result = await export_days(self.storage, ctx, days, self.month_path(tenant_id, month))
            await asyncio.to_thread(self._write_manifest, tenant_id, month, wanted)
            if status == "closed":
                await asyncio.to_thread(self._drop_partials, tenant_id, month)
            log.info(
                "focus month written", tenant_id=tenant_id, month=_month_key(month),
                rows=result.rows, status=status, path=str(result.path),
            )  # fmt: skip
            written.append(result)
        return written

    def _read_manifest(self, tenant_id: str, month: dt.date) -> Mapping[str, object] | None:
        try:
            data = json.loads(self._manifest_path(tenant_id, month).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _write_manifest(
        self, tenant_id: str, month: dt.date, manifest: Mapping[str, object]
    ) -> None:
        path = self._manifest_path(tenant_id, month)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(manifest, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _drop_partials(self, tenant_id: str, month: dt.date) -> None:
        shutil.rmtree(self.tenant_dir(tenant_id) / f"{_month_key(month)}.daily", ignore_errors=True)


def make_focus_emitter(
    output_dir: str,
    *,
    storage_backend: StorageBackend,
    format: str = "csv",  # the YAML param's name
    version: str = "1.3",
    currency: str = "USD",
    billing_account_id: str | None = None,
    billing_account_name: str | None = None,
) -> FocusEmitter:
    """Factory of the ``focus`` emitter type (YAML ``params``; DESIGN §16).

    Args:
        output_dir: the root of ``{tenant}/{YYYY-MM}.csv`` and the daily partials.
        storage_backend: injected (``needs_storage_backend``).
        format: ``csv`` or ``parquet`` (typed columns, money as exact decimals: README).
        version: FOCUS version, ``"1.3"`` (default, with split cost allocation) or ``"1.2"``.
        currency: ``BillingCurrency`` (Confluent Cloud bills in USD).
        billing_account_id: overrides the organization id found in the inventory.
        billing_account_name: ``BillingAccountName`` (default: the tenant id).
    """
    if format not in FORMATS:
        raise ValueError(f"format {format!r} is not available; use one of {', '.join(FORMATS)}")
    options = FocusOptions(
        version=str(version), currency=currency,
        billing_account_id=billing_account_id, billing_account_name=billing_account_name,
    )  # fmt: skip
    return FocusEmitter(Path(output_dir), storage_backend, options, format=format)


make_focus_emitter.needs_storage_backend = True  # type: ignore[attr-defined]
