"""``chargeback export focus`` (DESIGN §16): one tenant's FOCUS dataset for a month, on demand::

    chargeback export focus --config F --tenant T --month 2026-11 --out F [--version 1.3]

``--out`` names a ``.csv`` or a ``.parquet`` file; the suffix picks the format.

It writes the same dataset as the ``focus`` emitter (the params of a configured
``focus`` emitter are used: currency, billing account), reading a read-only storage
beside a running daemon. The summary on stdout gives the rows, the dates, the
``BilledCost`` total and the period's status; dates of the month that were never
calculated are named on stderr. Exit 0 when written, 1 when the month has no calculated
date or storage fails, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from chargeback.errors import ConfigError

__all__ = ["add_arguments", "cmd_export_focus"]


def add_arguments(export: argparse.ArgumentParser) -> None:
    """Add the options of ``export focus`` to the ``export`` parser."""
    export.add_argument("--month", help="focus: the billing period, YYYY-MM")
    export.add_argument(
        "--out", type=Path, help="focus: the file to write (.csv or .parquet: the format)"
    )
    export.add_argument(
        "--version", dest="focus_version", choices=["1.2", "1.3"], default=None,
        help="focus: FOCUS version (default: the configured focus emitter's, else 1.3)",
    )  # fmt: skip


def _emitter_params(settings: Any) -> dict[str, Any]:
    for emitter in settings.emitters:
        if emitter.type == "focus":
            return dict(emitter.params)
    return {}


def cmd_export_focus(args: argparse.Namespace) -> int:
    """Write the month's dataset; see the module docstring for the exit statuses."""
    from chargeback.core.emitters.focus.export import (  # noqa: PLC0415
        FocusOptions,
        export_month,
        parse_month,
        statuses,
    )
    from chargeback.core.emitters.focus.records import month_bounds  # noqa: PLC0415
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415
    from chargeback.logging import configure_logging, register_secrets  # noqa: PLC0415
    from chargeback.settings import load_settings, secret_values  # noqa: PLC0415

    configure_logging("warning", stream=sys.stderr)
    settings = load_settings(args.config)
    register_secrets(secret_values(settings))
    if len(args.tenant) != 1 or args.month is None or args.out is None:
        raise ConfigError(
            "export focus needs one --tenant, --month YYYY-MM and --out FILE.csv (or .parquet)"
        )
    if args.start or args.end or args.output:
        raise ConfigError("export focus takes --month and --out, not --from/--to/--output")
    tenant = args.tenant[0]
    try:
        month = parse_month(args.month)
    except ValueError as exc:
        raise ConfigError(f"--month: {exc}") from exc
    if args.out.suffix not in (".csv", ".parquet"):
        raise ConfigError(
            f"--out {args.out}: the FOCUS export writes CSV or Parquet; name a .csv or a "
            ".parquet file"
        )
    params = _emitter_params(settings)
    try:
        options = FocusOptions(
            version=args.focus_version or str(params.get("version", "1.3")),
            currency=str(params.get("currency", "USD")),
            billing_account_id=params.get("billing_account_id"),
            billing_account_name=params.get("billing_account_name"),
        )
    except ValueError as exc:
        raise ConfigError(f"{args.config}: the focus emitter's params: {exc}") from exc
    first, nxt = month_bounds(month)

    async def run() -> tuple[Any, dict[dt.date, str], dict[dt.date, str]]:
        async with open_backend(settings.storage, read_only=True) as storage:
            result = await export_month(storage, tenant, first, args.out, options)
            days, months = await statuses(storage, tenant, first, nxt)
        return result, days, months

    try:
        result, days, months = asyncio.run(run())
    except ValueError as exc:
        print(f"chargeback: {exc}", file=sys.stderr)
        return 1
    _report(tenant, result, days, months.get(first, "open"), (first, nxt))
    return 0


def _report(
    tenant: str,
    result: Any,
    days: dict[dt.date, str],
    status: str,
    period: tuple[dt.date, dt.date],
) -> None:
    from chargeback.core.money import format_amount  # noqa: PLC0415

    first, nxt = period
    open_days = sorted(d for d, s in days.items() if s == "open")
    billed = format_amount(result.billed_total)
    print(
        f"wrote {result.path}: FOCUS, tenant {tenant}, {first:%Y-%m}, "
        f"{result.rows} rows, {len(result.days)} days, BilledCost {billed}"
    )
    detail = f" ({len(open_days)} open days, from {open_days[0]})" if open_days else ""
    print(f"billing period {first:%Y-%m} is {status}{detail}")
    calculated = set(result.days)
    missing = [
        first + dt.timedelta(days=i)
        for i in range((nxt - first).days)
        if first + dt.timedelta(days=i) not in calculated
    ]
    if missing:
        print(
            f"note: {len(missing)} days of {first:%Y-%m} are not calculated and not in the "
            f"dataset: {missing[0]} .. {missing[-1]}",
            file=sys.stderr,
        )
