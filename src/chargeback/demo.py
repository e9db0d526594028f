"""``chargeback demo``: ccloud_sim and the daemon in one process, a chargeback in a minute.

What it does, in one event loop::

    ccloud_sim  create_app(scale="small") served by uvicorn on a free loopback port
    daemon      the settings file's demo tenant, its base URLs pointed at the sim,
                storage, CSV files, pid and heartbeat under --workdir, /metrics,
                /healthz and /readyz on --port
    backfill    one run of the tenant over --days dates, a progress line per date
                (a small "demo_progress" emitter registered through the emitter
                registry, so it sees each date right after its commit)
    summary     top identities by cost, cost by product type, the unallocated share,
                the reconciliation verdict, and where to look
    serve       until Ctrl-C (SIGINT/SIGTERM stop it gracefully, SIGUSR1 runs again),
                or exit at once with --exit-after-run

This is the only module of ``chargeback`` that imports ``ccloud_sim`` (DESIGN §11), and
only inside :func:`run_demo`, so ``chargeback --help`` does not load the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chargeback.core.emitters import registry as emitter_registry
from chargeback.core.models import UNALLOCATED
from chargeback.core.unattributed import Unattributed, render_unattributed, unattributed_cost
from chargeback.demo_output import Progress, money, share
from chargeback.errors import ConfigError
from chargeback.settings import (
    AppSettings,
    EmitterSettings,
    HttpSettings,
    StorageSettings,
    load_settings,
    validate_settings,
)

if TYPE_CHECKING:
    from chargeback.core.engine.types import RunSummary
    from chargeback.core.ownership.report import WindowTeams
    from chargeback.core.reconcile import ReconcileReport
    from chargeback.core.storage.backend import StorageBackend
    from chargeback.service.daemon import Daemon

__all__ = ["DemoOptions", "DemoResult", "add_arguments", "main", "run_demo"]

PROGRESS_EMITTER = "demo_progress"
EXIT_OK, EXIT_FAIL = 0, 1
_TOP = 10


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``chargeback demo`` was asked to do.

    Attributes:
        config: the settings file whose tenant is used (its ``http``, ``storage``,
            ``daemon`` and ``csv`` paths are replaced by the demo's own).
        days: how many settled days to backfill.
        exit_after_run: print the summary and exit instead of serving.
        workdir: where the database, CSV files, pid and heartbeat files go.
        port: the daemon's HTTP port (``None``: the settings' ``http.port``; 0: any).
        sim_port: the simulator's port (0: any free port).
        tenant: the tenant of the settings file to run (a ``confluent_cloud`` one).
        scale: the simulated organization's size.
        seed: the simulated organization's seed.
        log_level: the daemon's log level (its lines go to stderr).
    """

    config: Path
    days: int = 30
    exit_after_run: bool = False
    workdir: Path = Path("var/demo")
    port: int | None = None
    sim_port: int = 0
    tenant: str = "demo"
    scale: str = "small"
    seed: int = 0
    log_level: str = "error"


@dataclass(frozen=True, slots=True)
class DemoResult:
    """How the demo's backfill ended (what the summary printed)."""

    status: str
    dates_calculated: int
    reconcile_ok: bool
    billed_total: int
    allocated_total: int
    unallocated_total: int
    db_path: Path
    csv_dir: Path
    metrics_url: str

    @property
    def ok(self) -> bool:
        """The run succeeded and every date reconciles."""
        return self.status == "success" and self.reconcile_ok


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its ``chargeback demo`` sub-parser."""
    parser.add_argument("--days", type=_positive, default=30, help="days to backfill (30)")
    parser.add_argument(
        "--exit-after-run", action="store_true", help="print the summary and exit, do not serve"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("var/demo"),
        help="database, CSV, pid and heartbeat files (var/demo)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="the daemon's HTTP port (settings' http.port; 0: any)",
    )
    parser.add_argument("--sim-port", type=int, default=0, help="ccloud_sim's port (0: any free)")
    parser.add_argument("--tenant", default="demo", help="the settings' tenant to run (demo)")
    parser.add_argument("--scale", default="small", help="ccloud_sim organization size (small)")
    parser.add_argument("--seed", type=int, default=0, help="ccloud_sim organization seed (0)")
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="error",
        help="daemon log level; logs go to stderr (error)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of days, got {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    """Run the demo from parsed ``chargeback demo`` arguments; return the exit status."""
    options = DemoOptions(
        config=Path(args.config),
        days=getattr(args, "days", 30),
        exit_after_run=getattr(args, "exit_after_run", False),
        workdir=getattr(args, "workdir", Path("var/demo")),
        port=getattr(args, "port", None),
        sim_port=getattr(args, "sim_port", 0),
        tenant=getattr(args, "tenant", "demo"),
        scale=getattr(args, "scale", "small"),
        seed=getattr(args, "seed", 0),
        log_level=getattr(args, "log_level", "error"),
    )
    from chargeback.logging import configure_logging  # noqa: PLC0415  (keeps --help light)

    configure_logging(options.log_level, "console", stream=sys.stderr)
    try:
        result = asyncio.run(run_demo(options))
    except OSError as exc:
        print(f"chargeback demo: {exc} (choose another port with --port)", file=sys.stderr)
        return EXIT_FAIL
    if result is None:
        return EXIT_OK  # stopped by a signal while backfilling
    if options.exit_after_run:
        return EXIT_OK if result.ok else EXIT_FAIL
    return EXIT_OK


# -- settings ---------------------------------------------------------------------------


def demo_settings(base: AppSettings, options: DemoOptions, sim_url: str) -> AppSettings:
    """Return ``base`` narrowed to the demo tenant, pointed at the sim and the workdir.

    Raises:
        ConfigError: the tenant is not in the settings.
    """
    tenant = base.tenants.get(options.tenant)
    if tenant is None:
        known = ", ".join(sorted(base.tenants)) or "(none)"
        raise ConfigError(
            f"{options.config}: no tenant {options.tenant!r} to run the demo with; "
            f"tenants: {known}",
            source=str(options.config),
            field=f"tenants.{options.tenant}",
        )
    workdir = options.workdir.resolve()
    cutoff = tenant.cutoff_days if tenant.cutoff_days is not None else base.scheduling.cutoff_days
    plugin_settings: dict[str, Any] = {
        **tenant.plugin_settings,
        "base_url": sim_url,
        "telemetry_url": sim_url,
        "flink_url": sim_url,
        # The demo's sim keeps every day's usage, so the backfill is split by usage;
        # a real Metrics API keeps ~7 days (see the README's usage ledger section).
        "metrics": {**tenant.plugin_settings.get("metrics", {}), "retention_days": None},
    }
    emitters = [
        em.model_copy(update={"params": {**em.params, "output_dir": str(workdir / "csv")}})
        if em.type == "csv"
        else em
        for em in base.emitters
    ]
    emitters.append(EmitterSettings(name=PROGRESS_EMITTER, type=PROGRESS_EMITTER))
    port = base.http.port if options.port is None else options.port
    return base.model_copy(
        update={
            "storage": StorageSettings(path=workdir / "chargeback.db"),
            "http": HttpSettings(enabled=True, host="127.0.0.1", port=port),
            "daemon": base.daemon.model_copy(
                update={
                    "pid_file": workdir / "chargeback.pid",
                    "heartbeat_file": workdir / "chargeback.heartbeat",
                }
            ),
            "scheduling": base.scheduling.model_copy(update={"run_missed_on_startup": False}),
            "emitters": emitters,
            "tenants": {
                options.tenant: tenant.model_copy(
                    update={
                        "enabled": True,
                        "plugin_settings": plugin_settings,
                        "lookback_days": options.days + cutoff - 1,
                        "cutoff_days": cutoff,
                    }
                )
            },
        }
    )


# -- progress -----------------------------------------------------------------------------


# -- the demo -------------------------------------------------------------------------------


async def run_demo(options: DemoOptions, *, out: TextIO = sys.stdout) -> DemoResult | None:
    """Run the demo; return the backfill's result, or ``None`` if stopped while backfilling.

    Raises:
        ConfigError: the settings or the tenant's plugin settings are invalid.
        OSError: a port could not be bound.
    """
    from ccloud_sim.app import create_app  # noqa: PLC0415  (the demo is the only user)
    from chargeback.service.daemon import Daemon, DaemonState  # noqa: PLC0415
    from chargeback.service.http import HttpServer  # noqa: PLC0415

    base = load_settings(options.config)
    sim = HttpServer(
        create_app(seed=options.seed, scale=options.scale, metrics_retention_days=None),
        "127.0.0.1",
        options.sim_port,
    )
    await sim.start()
    try:
        sim_url = f"http://127.0.0.1:{sim.port}"
        settings = demo_settings(base, options, sim_url)
        lookback = settings.tenant_config(options.tenant).lookback_days
        first = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=lookback)
        progress = Progress(out, options.days, first)
        emitter_registry.register(PROGRESS_EMITTER, lambda **_: progress)
        await validate_settings(settings, str(options.config))
        options.workdir.mkdir(parents=True, exist_ok=True)
        daemon = Daemon(settings, handle_signals=not options.exit_after_run)
        serving = asyncio.create_task(daemon.async_run(), name="demo-daemon")
        while daemon.state is not DaemonState.RUNNING and not serving.done():  # noqa: ASYNC110  (the daemon exposes a state, not an event)
            await asyncio.sleep(0.02)
        if serving.done():
            serving.result()  # re-raise why the daemon did not start
            return None
        result = await _backfill(
            daemon, settings=settings, options=options, sim_url=sim_url, progress=progress, out=out
        )
        if options.exit_after_run or result is None:
            daemon.stop()
        else:
            print("\nServing until Ctrl-C (SIGUSR1 runs the tenant again).", file=out, flush=True)
        await serving
        return result
    finally:
        await sim.aclose()


async def _backfill(
    daemon: Daemon,
    *,
    settings: AppSettings,
    options: DemoOptions,
    sim_url: str,
    progress: Progress,
    out: TextIO,
) -> DemoResult | None:
    """Run the tenant once, then print the summary; ``None`` if the daemon stopped first."""
    tenant = options.tenant
    config = settings.tenant_config(tenant)
    today = dt.datetime.now(dt.UTC).date()
    last = today - dt.timedelta(days=config.cutoff_days)
    first = today - dt.timedelta(days=config.lookback_days)
    port = daemon.http.port if daemon.http is not None else settings.http.port
    http_url = f"http://127.0.0.1:{port}"
    print(
        f"ccloud_sim (scale {options.scale}, seed {options.seed}) on {sim_url}\n"
        f"chargeback daemon on {http_url} (/ui/ /api/v1/ /metrics /healthz /readyz)\n"
        f"backfilling tenant {tenant!r}: {options.days} days, {first} .. {last}"
        " (fetching inventory, billing and usage first)",
        file=out,
        flush=True,
    )
    key = None if daemon.pool is None else daemon.pool.request_run(tenant, "demo")
    task = None if key is None or daemon.pool is None else daemon.pool.tasks.get(key)
    if task is None:
        print("the tenant could not be started (see the log above)", file=out, flush=True)
        return None
    await asyncio.wait([task])
    progress.flush()
    summary = None if task.cancelled() else task.result()
    if summary is None or daemon.storage is None:
        print("backfill stopped before it finished", file=out, flush=True)
        return None
    if not progress.seen and summary.dates_calculated == 0:
        print("  nothing to calculate: every date is already in the database", file=out)
    status = str(summary.status)
    if summary.error:
        print(f"run {status}: {summary.error}", file=out, flush=True)
    return await _summary(
        daemon,
        settings=settings,
        options=options,
        first=first,
        last=last,
        status=status,
        summary=summary,
        http_url=http_url,
        out=out,
    )


@dataclass(frozen=True, slots=True)
class _Totals:
    """What the summary prints, read from storage (minor units)."""

    by_identity: dict[str, int]
    by_product: dict[str, int]
    grand: int
    unallocated: int
    reasons: list[tuple[str, int]]
    report: ReconcileReport
    teams: WindowTeams
    unattributed: Unattributed


async def _totals(storage: StorageBackend, tenant: str, first: dt.date, last: dt.date) -> _Totals:
    """Sum the backfilled window by identity and product; the largest unallocated reasons."""
    from chargeback.core.ownership.report import window_teams  # noqa: PLC0415
    from chargeback.core.reconcile import build_report  # noqa: PLC0415
    from chargeback.core.storage.ownership import ownership_store  # noqa: PLC0415

    end = last + dt.timedelta(days=1)
    by_identity: dict[str, int] = defaultdict(int)
    by_product: dict[str, int] = defaultdict(int)
    for t in await storage.cost_totals(tenant, first, end):
        by_identity[t.identity_id] += t.amount
        by_product[t.product_type] += t.amount
    reasons: dict[str, int] = defaultdict(int)
    day = first
    while day <= last:
        for row in await storage.read_rows(tenant, day):
            if row.identity_id == UNALLOCATED:
                reasons[f"{row.product_type}: {row.reason or row.rule}"] += row.amount
        day += dt.timedelta(days=1)
    return _Totals(
        by_identity=by_identity,
        by_product=by_product,
        grand=sum(by_identity.values()),
        unallocated=by_identity.get(UNALLOCATED, 0),
        reasons=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
        report=await build_report(storage, tenant, first, end),
        teams=await window_teams(ownership_store(storage), storage, tenant, first, last),
        unattributed=await unattributed_cost(storage, tenant, first, end),
    )


async def _summary(
    daemon: Daemon,
    *,
    settings: AppSettings,
    options: DemoOptions,
    first: dt.date,
    last: dt.date,
    status: str,
    summary: RunSummary,
    http_url: str,
    out: TextIO,
) -> DemoResult:
    """Print the summary tables and where to look; return the result."""
    storage = daemon.storage
    if storage is None:
        raise RuntimeError("the daemon's storage is closed")
    tenant = options.tenant
    totals = await _totals(storage, tenant, first, last)
    csv_dir = Path(_csv_dir(settings)) / tenant
    db = settings.storage.path
    lines = [
        "",
        f"run {status}: {summary.dates_calculated} dates calculated, "
        f"{summary.lines_read} billing lines read, {summary.rows_written} rows written",
        *_tables(totals, first, last),
        "",
        "Where to look",
        f"  CSV files      {csv_dir}/<date>.csv",
        f"  database       {db}",
        f"  web UI         {http_url}/ui/",
        f"  query API      {http_url}/api/v1/allocation?window=30d",
        f"  its OpenAPI    {http_url}/api/v1/openapi.json",
        f"  metrics        {http_url}/metrics",
        f"  health         {http_url}/healthz   {http_url}/readyz",
        f"  reconcile      CHARGEBACK_STORAGE__PATH={db} chargeback reconcile"
        f" --config {options.config} --tenant {tenant} --from {first} --to {last}",
    ]
    print("\n".join(lines), file=out, flush=True)
    report = totals.report
    return DemoResult(
        status=status,
        dates_calculated=summary.dates_calculated,
        reconcile_ok=report.ok,
        billed_total=report.billed_total,
        allocated_total=report.allocated_total,
        unallocated_total=totals.unallocated,
        db_path=db,
        csv_dir=csv_dir,
        metrics_url=f"{http_url}/metrics",
    )


def _tables(totals: _Totals, first: dt.date, last: dt.date) -> list[str]:
    """The summary's tables: top identities, products, unallocated, reconciliation."""
    grand, unallocated, why, report = (
        totals.grand,
        totals.unallocated,
        totals.reasons,
        totals.report,
    )
    ranked = sorted(totals.by_identity.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP]
    products = sorted(totals.by_product.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP]
    names, by_team = totals.teams.names, totals.teams.by_team
    return [
        "",
        f"Top identities by cost, {first} .. {last}",
        f"  {'identity':<32} {'cost':>14} {'share':>7}",
        *(
            f"  {(i + ' ' + names.get(i, ''))[:32]:<32} {money(a):>14} {share(a, grand):>7}"
            for i, a in ranked
        ),
        f"  {f'({len(totals.by_identity)} identities)':<32} {money(grand):>14}",
        "",
        "Cost by team (ownership rules; UNASSIGNED: no rule matched)",
        *(
            f"  {t:<32} {money(a):>14} {share(a, grand):>7}"
            for t, a in sorted(by_team.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
        "",
        "Cost by product type",
        *(f"  {t:<32} {money(a):>14} {share(a, grand):>7}" for t, a in products),
        "",
        f"Unallocated: {money(unallocated)} of {money(grand)} ({share(unallocated, grand)})"
        + (", largest reasons:" if why else ""),
        *(f"  {money(a):>14}  {r[:100]}" for r, a in why),
        *render_unattributed(totals.unattributed),
        f"Reconciliation: OK, allocated equals billed for {len(report.dates)} dates "
        f"({money(report.billed_total)})"
        if report.ok
        else f"Reconciliation: MISMATCH on {len(report.mismatches)} date/product rows "
        f"(billed {money(report.billed_total)}, allocated {money(report.allocated_total)})",
    ]


def _csv_dir(settings: AppSettings) -> str:
    for em in settings.emitters:
        if em.type == "csv":
            return str(em.params.get("output_dir", "."))
    return "(no csv emitter configured)"
