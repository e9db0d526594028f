"""The ``chargeback`` command (DESIGN §9).

::

    chargeback run          --config F                       the daemon
    chargeback once         --config F [--tenant T ...]      every tenant once (1 if any failed)
    chargeback rerun        --config F --tenant T --from D --to D [--now]
    chargeback check-config --config F                       validate, print effective settings
    chargeback reconcile    --config F --tenant T [--from D --to D]   (exit 1 on a mismatch)
    chargeback check        --config F                       health check for Docker/k8s (0/1)
    chargeback ownership    --config F --tenant T [--date D]  test the ownership rules
    chargeback migrate      --config F                       apply storage migrations, exit
    chargeback export openmetrics --config F --tenant T [--from D --to D] [--output F]
    chargeback copy-db      --from sqlite:///F --to postgresql://...   move without recomputing
    chargeback export focus --config F --tenant T --month YYYY-MM --out F.csv   FOCUS (or F.parquet)
    chargeback report       --config F --tenant T --month YYYY-MM [--team X] --format html|csv

``--config`` defaults to ``$CHARGEBACK_CONFIG`` or ``settings.yaml``. Every invalid
settings file ends the command with exit status 2 and a message naming the file, the
field and the problem on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from chargeback import export_cli, ownership_cli, report_cli, storage_cli
from chargeback.core.engine.types import RunStatus, RunSummary
from chargeback.core.money import format_amount
from chargeback.errors import ChargebackError, ConfigError
from chargeback.logging import configure_logging, register_secrets
from chargeback.service import gcpolicy
from chargeback.settings import (
    AppSettings,
    load_settings,
    masked_settings,
    secret_values,
    validate_settings,
)

if TYPE_CHECKING:
    from chargeback.core.storage.backend import RunRecord

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
EXIT_SCRAPE_GAPS = 4
"""``once``/``rerun --now``: every run succeeded, but lines had no data (``scrape_gap``)."""


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from exc


def _accept_gaps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accept-gaps",
        action="store_true",
        help=f"exit 0, not {EXIT_SCRAPE_GAPS}, despite lines whose metrics had no samples "
        "(scrape_gap; they are still stored at 0 with the reason and listed)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chargeback", description="Split a cloud bill exactly among those who caused it."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--config",
            type=Path,
            default=Path(os.environ.get("CHARGEBACK_CONFIG", "settings.yaml")),
            help="settings file (default: $CHARGEBACK_CONFIG or settings.yaml)",
        )
        return p

    add("run", "run the daemon: scheduler, /metrics, health, signals")
    once = add("once", "run every tenant once and exit (non-zero if any failed)")
    once.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    _accept_gaps(once)
    rerun = add("rerun", "recalculate a range of dates of a tenant")
    rerun.add_argument("--tenant", required=True)
    rerun.add_argument("--from", dest="start", type=_date, required=True, help="first day")
    rerun.add_argument("--to", dest="end", type=_date, required=True, help="last day (inclusive)")
    rerun.add_argument(
        "--now", action="store_true", help="run it in this process instead of signalling the daemon"
    )
    _accept_gaps(rerun)
    add("check-config", "validate the settings and print them with secrets masked")
    rec = add("reconcile", "compare billed and allocated totals (exit 1 on a mismatch)")
    rec.add_argument("--tenant", required=True)
    rec.add_argument("--from", dest="start", type=_date, help="first day (default: lookback)")
    rec.add_argument("--to", dest="end", type=_date, help="last day, inclusive (default: today)")
    rec.add_argument(
        "--accept-refused",
        action="store_true",
        help="exit 0 despite billing lines whose amount was refused (they are still listed)",
    )
    add("check", "exit 0 when the running daemon is healthy, 1 otherwise")
    storage_cli.add_commands(add)
    export_cli.add_commands(add)
    ownership_cli.add_commands(add)
    report_cli.add_commands(add)
    if importlib.util.find_spec("chargeback.demo") is not None:
        demo = add("demo", "start ccloud_sim and the daemon and compute a chargeback")
        importlib.import_module("chargeback.demo").add_arguments(demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status.

    Called without ``argv`` (the ``chargeback`` program itself), it also sets the
    process's collector policy (:mod:`chargeback.service.gcpolicy`; the daemon freezes
    the start-up heap); called with ``argv`` (embedded, the tests) it leaves it alone.
    """
    if argv is None:
        gcpolicy.configure()
    args = _parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": _cmd_run,
        "once": _cmd_once,
        "rerun": _cmd_rerun,
        "check-config": _cmd_check_config,
        "reconcile": _cmd_reconcile,
        "check": _cmd_check,
        "demo": _cmd_demo,
        "migrate": storage_cli.cmd_migrate,
        "copy-db": storage_cli.cmd_copy_db,
        "export": export_cli.cmd_export,
        "ownership": ownership_cli.cmd_ownership,
        "report": report_cli.cmd_report,
    }
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"chargeback: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ChargebackError as exc:
        print(f"chargeback: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace, *, validate: bool = True) -> AppSettings:
    settings = load_settings(args.config)
    register_secrets(secret_values(settings))  # before any plugin code can log
    if validate:
        asyncio.run(validate_settings(settings, str(args.config)))
    return settings


def _cmd_run(args: argparse.Namespace) -> int:
    from chargeback.service.daemon import Daemon  # noqa: PLC0415  (keeps `check` light)

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    register_secrets(secret_values(settings))
    asyncio.run(validate_settings(settings, str(args.config)))
    try:
        return Daemon(settings, settings_path=args.config).run()
    except OSError as exc:
        print(f"chargeback: {exc}", file=sys.stderr)
        return EXIT_FAIL


def _run_in_process(
    settings: AppSettings,
    tenants: Sequence[str] | None,
    *,
    again: str,
    accept_gaps: bool = False,
) -> int:
    """Run tenants once in this process; report each outcome; return the exit status.

    Exit 1 when a run failed or any emit failed (the emit is retried by the next run),
    ``128 + signal`` when SIGTERM/SIGINT stopped the runs early, 4 when every run
    succeeded but lines had no data (scrape gaps), unless ``accept_gaps``.
    """
    from chargeback.service.daemon import Daemon  # noqa: PLC0415

    daemon = Daemon(settings, handle_signals=True)
    summaries = asyncio.run(daemon.run_once(tenants))
    failed = False
    for summary in summaries:
        failed |= _report_outcome(summary, again=again.format(tenant=summary.tenant_id))
    if summaries and daemon.stopped_by is None:
        asyncio.run(_report_windows(settings, [s.tenant_id for s in summaries]))
    if daemon.stopped_by is not None:
        print(
            f"chargeback: stopped by {daemon.stopped_by.name}: committed dates are kept, the "
            f"rest was not calculated; to finish, run `{again.format(tenant='T')}` again",
            file=sys.stderr,
        )
        return 128 + int(daemon.stopped_by)
    if failed:
        return EXIT_FAIL
    gaps = sum(s.scrape_gap_lines for s in summaries)
    return EXIT_SCRAPE_GAPS if gaps and not accept_gaps else EXIT_OK


async def _report_windows(settings: AppSettings, tenants: Sequence[str]) -> None:
    """After ``once``: each tenant window's refused lines and unattributed cost (stderr)."""
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415
    from chargeback.core.unattributed import unattributed_cost  # noqa: PLC0415

    today = dt.datetime.now(dt.UTC).date()
    async with open_backend(settings.storage, read_only=True) as storage:
        for tenant in tenants:
            cfg = settings.tenant_config(tenant)
            first = today - dt.timedelta(days=cfg.lookback_days)
            end = today - dt.timedelta(days=cfg.cutoff_days - 1)
            refused = sum(r.refused for r in await storage.reconcile(tenant, first, end))
            u = await unattributed_cost(storage, tenant, first, end)
            share = f"{100 * u.amount / u.total:.1f}%" if u.total else "-"
            sentinels = format_amount(sum(u.sentinels.values()))
            unknown = format_amount(sum(u.unknown_principals.values()))
            n_unknown = len(u.unknown_principals)
            print(
                f"tenant {tenant} {first}..{end - dt.timedelta(days=1)}: unattributed "
                f"{format_amount(u.amount)} of {format_amount(u.total)} ({share}: UNALLOCATED "
                f"{format_amount(u.unallocated)}, sentinels {sentinels}, {n_unknown} "
                f"principals not in the inventory {unknown}); refused lines {refused}"
                + (" (see chargeback reconcile)" if refused else ""),
                file=sys.stderr,
            )


def _report_outcome(summary: RunSummary, *, again: str) -> bool:
    """Print one tenant's outcome (and what to do about a failure); return whether it failed."""
    counts = (
        f"{summary.dates_calculated} dates calculated, {summary.emitted} emitted, "
        f"{summary.emit_failures} emits failed; in the dates calculated: "
        f"{summary.refused_lines} refused lines, unattributed "
        f"{format_amount(summary.unattributed)}"
    ) + (
        f", {summary.scrape_gap_lines} lines without data (scrape_gap: stored at 0 with "
        "the reason, never billed; see the warnings in the log)"
        if summary.scrape_gap_lines
        else ""
    )
    if summary.status is RunStatus.SUCCESS and not summary.emit_failures:
        print(f"tenant {summary.tenant_id}: {summary.status}: {counts}", file=sys.stderr)
        return False
    if summary.status is RunStatus.SUCCESS:
        what = (
            "the dates are stored; the failed emits are retried by the next run of the "
            f"tenant: fix the emitter (see the log) and run `{again}`"
        )
    else:
        what = (
            f"nothing retries this run on its own: fix the cause (see the log) and run "
            f"`{again}` again (a running daemon's next scheduled run also picks it up)"
        )
    print(
        f"tenant {summary.tenant_id}: {summary.status}: {counts}"
        + (f"; error: {summary.error}" if summary.error else "")
        + f"\n  what to do: {what}",
        file=sys.stderr,
    )
    return True


def _cmd_once(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    register_secrets(secret_values(settings))
    if not settings.enabled_tenants():
        where = "all of them are disabled" if settings.tenants else "it has none"
        raise ConfigError(
            f"{args.config}: no enabled tenant to run ({where}): add one under 'tenants:', "
            "e.g. tenants: {prod: {ecosystem: confluent_cloud, plugin_settings: {...}}}",
            source=str(args.config),
            field="tenants",
        )
    asyncio.run(validate_settings(settings, str(args.config)))
    again = f"chargeback once --config {args.config} --tenant {{tenant}}"
    return _run_in_process(settings, args.tenant, again=again, accept_gaps=args.accept_gaps)


def _cmd_rerun(args: argparse.Namespace) -> int:
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    register_secrets(secret_values(settings))
    if args.tenant not in settings.enabled_tenants():
        raise ConfigError(
            f"{args.config}: no enabled tenant {args.tenant!r}; "
            f"enabled: {', '.join(settings.enabled_tenants()) or '(none)'}",
            source=str(args.config),
            field="tenants",
        )
    if args.end < args.start:
        print("chargeback: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG

    async def record() -> tuple[int, RunRecord | None]:
        async with open_backend(settings.storage) as storage:
            await storage.interrupt_stale_runs(dt.datetime.now(dt.UTC))
            request_id = await storage.request_rerun(
                args.tenant, args.start, args.end, dt.datetime.now(dt.UTC)
            )
            runs = await storage.list_runs(args.tenant, limit=1)
        return request_id, next((r for r in runs if r.status == "running"), None)

    request_id, running = asyncio.run(record())
    print(f"rerun request {request_id} recorded: {args.tenant} {args.start}..{args.end}")
    if args.now:
        asyncio.run(validate_settings(settings, str(args.config)))
        again = f"chargeback rerun --config {args.config} --tenant {{tenant}} --from ... --now"
        return _run_in_process(settings, [args.tenant], again=again, accept_gaps=args.accept_gaps)
    print(_signal_daemon(settings, args.tenant, running))
    return EXIT_OK


def _signal_daemon(settings: AppSettings, tenant: str, running: RunRecord | None) -> str:
    """Wake the daemon for a recorded rerun request; return what will happen."""
    pid = _daemon_pid(settings.daemon.pid_file)
    if pid is None:
        from chargeback.service.scheduling import latest_fire_time, next_fire_time  # noqa: PLC0415

        now = dt.datetime.now(dt.UTC)
        expr = settings.tenant_schedule(tenant)
        nxt = next_fire_time(expr, now) or latest_fire_time(expr, now)
        return (
            f"no running daemon found ({settings.daemon.pid_file}): the request waits for the "
            f"next run of {tenant} (its schedule {expr!r} next fires at {nxt:%Y-%m-%d %H:%M} "
            "UTC, if a daemon runs then), or run this command again with --now"
        )
    os.kill(pid, signal.SIGUSR1)
    if running is not None:
        return (
            f"signalled the daemon (pid {pid}): {tenant} is running now (run "
            f"{running.run_id[:12]}, since {running.started_at:%H:%M:%S} UTC); the request "
            "runs right after that run ends"
        )
    return f"signalled the daemon (pid {pid}): {tenant} runs the request now"


def _daemon_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _cmd_check_config(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    settings = _load(args)
    print(f"# {args.config}: valid; effective settings (secrets masked)")
    print(yaml.safe_dump(masked_settings(settings), sort_keys=False), end="")
    return EXIT_OK


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from chargeback.core.reconcile import build_report, render_report  # noqa: PLC0415
    from chargeback.core.storage.factory import open_backend  # noqa: PLC0415
    from chargeback.core.unattributed import (  # noqa: PLC0415
        render_unattributed,
        unattributed_cost,
    )

    configure_logging("warning", stream=sys.stderr)
    settings = _load(args, validate=False)
    if args.tenant not in settings.tenants:
        raise ConfigError(
            f"{args.config}: no tenant {args.tenant!r}", source=str(args.config), field="tenants"
        )
    cfg = settings.tenant_config(args.tenant)
    today = dt.datetime.now(dt.UTC).date()
    start = args.start or today - dt.timedelta(days=cfg.lookback_days)
    end = (args.end or today) + dt.timedelta(days=1)  # --to is inclusive, storage exclusive
    if end <= start:
        print("chargeback: --to is before --from", file=sys.stderr)
        return EXIT_CONFIG

    async def report() -> tuple[bool, str]:
        async with open_backend(settings.storage, read_only=True) as storage:
            rep = await build_report(
                storage, args.tenant, start, end, accept_refused=args.accept_refused
            )
            unattributed = await unattributed_cost(storage, args.tenant, start, end)
        return rep.ok, "\n".join([render_report(rep), *render_unattributed(unattributed)])

    ok, text = asyncio.run(report())
    print(text)
    return EXIT_OK if ok else EXIT_FAIL


def _cmd_check(args: argparse.Namespace) -> int:
    from chargeback.service.heartbeat import check_heartbeat  # noqa: PLC0415

    settings = load_settings(args.config)
    interval = settings.daemon.heartbeat_interval_s
    problem = check_heartbeat(settings.daemon.heartbeat_file, max_age_s=3 * interval + 5)
    if problem is None:
        print("ok")
        return EXIT_OK
    print(f"unhealthy: {problem}", file=sys.stderr)
    return EXIT_FAIL


def _cmd_demo(args: argparse.Namespace) -> int:
    # Hook for the ship helper: chargeback/demo.py provides `main(args) -> int`.
    demo = importlib.import_module("chargeback.demo")
    status: int = demo.main(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
