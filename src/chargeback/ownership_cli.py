"""``chargeback ownership``: test ownership rules against the stored inventory (DESIGN §14).

::

    chargeback ownership --config F --tenant T [--date D]

Prints, for every identity and resource the database knows for the tenant, the team
it maps to on ``--date`` (default: the tenant's newest calculated day) and the rule
that decided it, the conflicts, then the identities whose cost no rule assigns, most
first, over the 30 days ending on that date. Reads the database read-only (beside a
running daemon is fine) and decides with the rules of ``--config``, so rules can be
tried before the daemon is reloaded. Exit 1 when a rule is invalid (the message names
it) or the tenant has no stored inventory; 2 for any other settings error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chargeback.errors import ConfigError

if TYPE_CHECKING:
    from chargeback.core.ownership.report import DayKeys, OwnershipReport
    from chargeback.core.storage.backend import StorageBackend
    from chargeback.settings import AppSettings

__all__ = ["WINDOW_DAYS", "add_commands", "cmd_ownership"]

Add = Callable[[str, str], argparse.ArgumentParser]
WINDOW_DAYS = 30
"""Days of cost the unmapped list covers (ending on ``--date``)."""
EXIT_OK, EXIT_FAIL = 0, 1


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def add_commands(add: Add) -> None:
    """Register ``ownership`` on the ``chargeback`` parser (``add(name, help)``)."""
    p = add("ownership", "test the ownership rules: the team of every identity and resource")
    p.add_argument("--tenant", required=True)
    p.add_argument("--date", type=_date, help="evaluate on this day (default: newest calculated)")


async def _window(
    storage: StorageBackend, tenant: str, day: dt.date
) -> dict[dt.date, DayKeys | None]:
    """Each day's keys: from its stored attribution, else from its rows (``None``: none)."""
    from chargeback.core.ownership.attribution import key_amounts  # noqa: PLC0415
    from chargeback.core.storage.ownership import ownership_store  # noqa: PLC0415

    start = day - dt.timedelta(days=WINDOW_DAYS - 1)
    states = await storage.get_date_states(tenant, start, day + dt.timedelta(days=1))
    try:
        store = ownership_store(storage)
    except TypeError:
        store = None
    out: dict[dt.date, DayKeys | None] = {}
    for i in range(WINDOW_DAYS):
        d = start + dt.timedelta(days=i)
        if d not in states:
            out[d] = None
            continue
        att = await store.read_attribution(tenant, d) if store is not None else None
        if att is not None and att.calc_seq == states[d].calc_seq:
            out[d] = {s.key: (s.amount, s.rows) for s in att.shares}
        else:
            out[d] = key_amounts(await storage.read_rows(tenant, d))
    return out


async def _report(settings: AppSettings, tenant: str, day: dt.date | None) -> OwnershipReport:
    from chargeback.core.ownership.matcher import Directory, Matcher  # noqa: PLC0415
    from chargeback.core.ownership.report import build_report  # noqa: PLC0415
    from chargeback.core.ownership.rules import compile_rules  # noqa: PLC0415
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415

    async with open_backend(settings.storage, read_only=True) as storage:
        resources, identities = await storage.load_inventory(tenant)
        if not resources and not identities:
            raise ConfigError(
                f"no inventory stored for tenant {tenant!r}: run the daemon or "
                "`chargeback once` first, so the tester has identities to map",
                field="tenants",
            )
        if day is None:
            day = await storage.latest_calculated_date(tenant) or dt.datetime.now(dt.UTC).date()
        matcher = Matcher(
            compile_rules(settings.ownership, tenant), Directory.of(resources, identities)
        )
        window = await _window(storage, tenant, day)
    return build_report(
        tenant, day, matcher, resources=resources, identities=identities, window=window
    )


def cmd_ownership(args: argparse.Namespace) -> int:
    """Run ``chargeback ownership``; return the exit status."""
    from chargeback.core.ownership.report import render_report  # noqa: PLC0415
    from chargeback.logging import configure_logging  # noqa: PLC0415
    from chargeback.settings import load_settings  # noqa: PLC0415

    configure_logging("warning", stream=sys.stderr)
    try:
        settings = load_settings(Path(args.config))
    except ConfigError as exc:
        if exc.field is None or not exc.field.startswith("ownership"):
            raise
        print(f"chargeback: invalid ownership rules: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.tenant not in settings.tenants:
        raise ConfigError(f"{args.config}: no tenant {args.tenant!r}", field="tenants")
    try:
        report = asyncio.run(_report(settings, args.tenant, args.date))
    except ConfigError as exc:
        print(f"chargeback: {exc}", file=sys.stderr)
        return EXIT_FAIL
    sys.stdout.write(render_report(report))
    return EXIT_OK
