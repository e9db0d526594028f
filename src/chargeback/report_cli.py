"""``chargeback report``: a tenant's showback month per team, as HTML or CSV (DESIGN §17).

::

    chargeback report --config F --tenant T --month YYYY-MM [--team X] [--format html|csv]
                      [--out FILE]

Reads the database read-only (beside a running daemon is fine) and writes one
self-contained file (:mod:`chargeback.report`) to ``--out`` (atomically: a reader never
sees half a file) or to stdout. A summary goes to stderr. Exit 0 when the report is
written and complete, 1 when it is written but some figures are incomplete (days not
calculated before the newest one, days without a current team attribution, days that
do not reconcile: the report names them) or storage fails, 2 for bad arguments: an
unknown tenant or team, a malformed month, a month with no calculated day, an output
directory that does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chargeback.errors import ConfigError

if TYPE_CHECKING:
    from chargeback.report import ReportView, ShowbackReport
    from chargeback.settings import AppSettings

__all__ = ["add_commands", "cmd_report", "parse_month"]

Add = Callable[[str, str], argparse.ArgumentParser]
EXIT_OK, EXIT_INCOMPLETE = 0, 1


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` -> the month's first day.

    Raises:
        ConfigError: anything else.
    """
    if re.fullmatch(r"\d{4}-\d{2}", text):
        try:
            return dt.date.fromisoformat(f"{text}-01")
        except ValueError:
            pass
    raise ConfigError(f"--month: expected YYYY-MM (e.g. 2026-11), got {text!r}")


def add_commands(add: Add) -> None:
    """Register ``report`` on the ``chargeback`` parser (``add(name, help)``)."""
    p = add("report", "write a tenant's showback month per team (self-contained HTML, or CSV)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--month", required=True, help="the month, YYYY-MM")
    p.add_argument("--team", help="only this team (default: every team)")
    p.add_argument("--format", choices=["html", "csv"], default="html", help="default: html")
    p.add_argument("--out", type=Path, help="the file to write (default: stdout)")


async def _read(settings: AppSettings, args: argparse.Namespace, month: dt.date) -> ShowbackReport:
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415
    from chargeback.report import read_report  # noqa: PLC0415
    from chargeback.service.api.allocation import CURRENCY  # noqa: PLC0415

    async with open_backend(settings.storage, read_only=True) as storage:
        report = await read_report(
            storage, args.tenant, month, team=args.team, budgets=settings.budgets,
            currency=CURRENCY,
        )  # fmt: skip
        if not report.current.calculated:
            latest = await storage.latest_calculated_date(args.tenant)
            newest = "none" if latest is None else f"{latest:%Y-%m-%d}"
            raise ConfigError(
                f"--month {month:%Y-%m}: tenant {args.tenant!r} has no calculated day in it "
                f"(its newest calculated day: {newest})"
            )
    known = {*report.current.teams, *report.previous.teams}
    budgeted = {r.team for r in settings.budgets.for_tenant(args.tenant)}
    if args.team is not None and args.team not in known | budgeted:
        teams = ", ".join(sorted(known | budgeted)) or "(none)"
        raise ConfigError(
            f"--team {args.team!r}: no cost and no budget in {month:%Y-%m} or the month "
            f"before for tenant {args.tenant!r}; its teams: {teams}"
        )
    return report


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)


def _summary(view: ReportView, out: Path | None) -> None:
    from chargeback.core.money import format_amount  # noqa: PLC0415

    r, m = view.report, view.current
    where = "stdout" if out is None else str(out)
    team = f", team {r.team}" if r.team else f", {len(view.teams)} teams"
    reconciled = "=" if m.billed == m.allocated and not m.mismatched else "!="
    print(
        f"wrote {where}: showback of tenant {r.tenant} {m.month:%Y-%m}{team}; "
        f"{len(m.calculated)} of {len(m.days)} days calculated; allocated "
        f"{format_amount(m.allocated, 2)} {reconciled} billed {format_amount(m.billed, 2)}",
        file=sys.stderr,
    )
    for problem in view.problems:
        print(f"incomplete: {problem}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report; see the module docstring for the exit statuses."""
    from chargeback.logging import configure_logging, register_secrets  # noqa: PLC0415
    from chargeback.report import build_view, render_csv, render_html  # noqa: PLC0415
    from chargeback.settings import load_settings, secret_values  # noqa: PLC0415

    configure_logging("warning", stream=sys.stderr)
    settings = load_settings(args.config)
    register_secrets(secret_values(settings))
    if args.tenant not in settings.tenants:
        known = ", ".join(settings.tenants) or "(none)"
        raise ConfigError(
            f"{args.config}: no tenant {args.tenant!r}; its tenants: {known}",
            source=str(args.config), field="tenants",
        )  # fmt: skip
    month = parse_month(args.month)
    if args.out is not None and not args.out.parent.is_dir():
        raise ConfigError(f"--out {args.out}: no directory {args.out.parent}")
    view = build_view(asyncio.run(_read(settings, args, month)))
    now = dt.datetime.now(dt.UTC)
    _write(
        render_html(view, generated=now) if args.format == "html" else render_csv(view), args.out
    )
    _summary(view, args.out)
    return EXIT_INCOMPLETE if view.problems else EXIT_OK
