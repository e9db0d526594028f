"""``chargeback export openmetrics``: daily history for Prometheus backfill (DESIGN §15);
``chargeback export focus``: a FOCUS dataset (DESIGN §16, :mod:`chargeback.focus_cli`).

::

    chargeback export openmetrics --config F --tenant T [--from D] [--to D] [--output FILE]
    promtool tsdb create-blocks-from openmetrics FILE /prometheus/data
    chargeback export focus --config F --tenant T --month YYYY-MM --out F.csv [--version V]

Reads the database read-only (next to a running daemon is fine) and writes
:mod:`chargeback.core.query.openmetrics` text to ``--output`` (default stdout). The days
default to the tenant's lookback window, as ``reconcile`` does. Days never calculated
are left out and counted on stderr, so a gap is said, not hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from chargeback import focus_cli
from chargeback.errors import ConfigError

if TYPE_CHECKING:
    from chargeback.settings import AppSettings

__all__ = ["add_commands", "cmd_export"]

Add = Callable[[str, str], argparse.ArgumentParser]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def add_commands(add: Add) -> None:
    """Register ``export`` on the ``chargeback`` parser (``add(name, help)``)."""
    export = add("export", "write stored history in another format (openmetrics, focus)")
    export.add_argument("format", choices=["openmetrics", "focus"], help="the output format")
    export.add_argument("--tenant", action="append", required=True, help="tenant (repeatable)")
    export.add_argument("--from", dest="start", type=_date, help="first day (default: lookback)")
    export.add_argument("--to", dest="end", type=_date, help="last day, inclusive (default: today)")
    export.add_argument("--output", type=Path, help="file to write (default: stdout)")
    focus_cli.add_arguments(export)


async def _write(settings: AppSettings, args: argparse.Namespace, out: TextIO) -> list[str]:
    from chargeback.core.query import Step, Window, query_source  # noqa: PLC0415
    from chargeback.core.query.aggregate import DayTotal  # noqa: PLC0415
    from chargeback.core.query.openmetrics import (  # noqa: PLC0415
        COST_DIMENSIONS,
        DailyHistory,
        render_openmetrics,
    )
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415

    today = dt.datetime.now(dt.UTC).date()
    histories, gaps = [], []
    async with open_backend(settings.storage, read_only=True) as storage:
        source = query_source(storage)
        for tenant in args.tenant:
            cfg = settings.tenant_config(tenant)
            start = args.start or today - dt.timedelta(days=cfg.lookback_days)
            window = Window(start, (args.end or today) + dt.timedelta(days=1))
            groups = await source.allocation_groups(tenant, window, Step.DAY, COST_DIMENSIONS, ())
            states = await storage.get_date_states(tenant, window.start, window.end)
            totals = [
                DayTotal(s.day, s.billed_total, s.allocated_total, s.unallocated_total)
                for s in states.values()
            ]
            histories.append(DailyHistory(tenant, groups, totals))
            missing = window.days - len(states)
            gaps.append(f"{tenant}: {len(states)} days exported, {missing} not calculated")
    out.writelines(render_openmetrics(histories))
    return gaps


def cmd_export(args: argparse.Namespace) -> int:
    """Write the history; 0 when written (gaps are reported on stderr), 2 on bad arguments."""
    if args.format == "focus":
        return focus_cli.cmd_export_focus(args)
    if args.month or args.out or args.focus_version:
        raise ConfigError(
            "export openmetrics takes --from/--to/--output, not --month/--out/--version"
        )
    from chargeback.logging import configure_logging, register_secrets  # noqa: PLC0415
    from chargeback.settings import load_settings, secret_values  # noqa: PLC0415

    configure_logging("warning", stream=sys.stderr)
    settings = load_settings(args.config)
    register_secrets(secret_values(settings))
    for tenant in args.tenant:
        if tenant not in settings.tenants:
            raise ConfigError(
                f"{args.config}: no tenant {tenant!r}", source=str(args.config), field="tenants"
            )
    if args.start and args.end and args.end < args.start:
        print("chargeback: --to is before --from", file=sys.stderr)
        return 2
    if args.output is None:
        gaps = asyncio.run(_write(settings, args, sys.stdout))
    else:
        tmp = args.output.with_name(args.output.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            gaps = asyncio.run(_write(settings, args, out))
        tmp.replace(args.output)
    for gap in gaps:
        print(f"chargeback export: {gap}", file=sys.stderr)
    return 0
