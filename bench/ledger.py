"""The usage ledger's cost (DESIGN §13, issue 15): its size per day, and the backfill and
next-day runs with it on, beside the same runs without it, in one process (A/B pairs).

Each pair runs, on a fresh database each, a ``--days`` backfill at the sim's NOW and
then the next day's run (the sim's clock one day later) twice: once as the engine is
(``ledger``: usage read from the ledger, missing cells fetched and stored first, the
collection before and after the run's dates) and once with the pre-ledger provider
(``no-ledger``: :class:`~chargeback.core.engine.usage.RunUsage`, no collection). The
sim is in process and keeps every day's usage; the ledger variant's retention is set
past the backfill (``--days + 5``), so both split every day by the same usage.

Usage::

    .venv/bin/python -m bench.ledger --scale large --days 14 --pairs 2 [--out result.json]

Reports per variant the median wall and CPU of both runs, and for the ledger its rows
and bytes per day (``dbstat``) and the ratio ledger / no-ledger. CPU figures:
``cpu_s`` the whole benchmark process (the in-process sim included), ``sim_cpu_s`` the
sim's share, ``chargeback_cpu_s`` the rest (the daemon process's own work),
``writer_cpu_s`` the storage's writer child (large date commits and, since the ledger
writes through it, large ledger batches), ``total_cpu_s`` chargeback's own plus its
writer's: what the run costs the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench._harness import NOW, TENANT, Meter, Sim, plugin_settings, quiet_logs, write_report
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import TenantConfig
from chargeback.core.engine.usage import RunUsage
from chargeback.core.storage.sqlite import SQLiteBackend


def _no_ledger(monkey: dict[str, Any]) -> None:
    """Swap in the pre-ledger usage provider and no collection (undone by _restore)."""
    monkey["usage"] = TenantRuntime.usage_for_run
    monkey["collect"] = TenantRuntime._collect_quietly

    async def no_collection(self: TenantRuntime) -> None:
        return None

    TenantRuntime.usage_for_run = lambda self: RunUsage(self._metrics)  # type: ignore[method-assign]
    TenantRuntime._collect_quietly = no_collection  # type: ignore[method-assign]


def _restore(monkey: dict[str, Any]) -> None:
    if monkey:
        TenantRuntime.usage_for_run = monkey.pop("usage")  # type: ignore[method-assign]
        TenantRuntime._collect_quietly = monkey.pop("collect")  # type: ignore[method-assign]


def _process_cpu_s(pid: int | None) -> float:
    """User + system CPU of a running process (``/proc/PID/stat``), 0 without one."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _run(sim: Sim, db: Path, days: int, retention: int | None) -> dict[str, Any]:
    storage = SQLiteBackend(db)
    await storage.open()
    settings = {**plugin_settings(), "metrics": {"retention_days": retention}}
    config = TenantConfig(
        name=TENANT, ecosystem="confluent_cloud", plugin_settings=settings,
        lookback_days=days, cutoff_days=3, run_timeout_s=24 * 3600.0,
    )  # fmt: skip
    runtime = TenantRuntime(config, sim.plugin(), storage, clock=sim.clock.now)
    sim.transport.sim_cpu_s = 0.0
    try:
        with Meter() as m:
            summary = await runtime.run()
        assert summary.error is None, summary.error
        writer_cpu = _process_cpu_s(storage.writer_pid)  # a fresh child per run (new backend)
    finally:
        await runtime.aclose()
        await storage.close()
    sim_cpu = sim.transport.sim_cpu_s
    return {
        "wall_s": round(m.wall_s, 3),
        "cpu_s": round(m.cpu_s, 3),
        "sim_cpu_s": round(sim_cpu, 3),
        "chargeback_cpu_s": round(m.cpu_s - sim_cpu, 3),
        "writer_cpu_s": round(writer_cpu, 3),
        "total_cpu_s": round(m.cpu_s - sim_cpu + writer_cpu, 3),
    }


def _ledger_size(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        rows_per_day = [int(r[0]) for r in conn.execute(
            "SELECT COUNT(*) FROM usage_ledger GROUP BY date ORDER BY date")]  # fmt: skip
        query = "SELECT SUM(pgsize) FROM dbstat WHERE name = 'usage_ledger'"
        try:
            size = int(conn.execute(query).fetchone()[0] or 0)
        except sqlite3.OperationalError:  # SQLite built without dbstat
            size = -1
    finally:
        conn.close()
    days = max(len(rows_per_day), 1)
    return {
        "days_stored": len(rows_per_day),
        "rows_per_day_median": statistics.median(rows_per_day) if rows_per_day else 0,
        "bytes_per_day": size // days if size >= 0 else None,
        "bytes_total": size if size >= 0 else None,
    }


async def _pair(scale: str, days: int, workdir: Path, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in ("ledger", "no-ledger") if n % 2 == 0 else ("no-ledger", "ledger"):
        sim = Sim(scale=scale)
        db = workdir / f"{variant}-{n}.sqlite"
        monkey: dict[str, Any] = {}
        if variant == "no-ledger":
            _no_ledger(monkey)
        try:
            retention = days + 5 if variant == "ledger" else None
            backfill = await _run(sim, db, days, retention)
            sim.clock.set(NOW + dt.timedelta(days=1))
            next_day = await _run(sim, db, days, retention)
        finally:
            _restore(monkey)
        out[variant] = {"backfill": backfill, "next_day": next_day}
        if variant == "ledger":
            out["ledger_size"] = _ledger_size(db)
    return out


def _median(pairs: list[dict[str, Any]], variant: str, run: str, key: str) -> float:
    return float(statistics.median(p[variant][run][key] for p in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    quiet_logs()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        pairs = [asyncio.run(_pair(args.scale, args.days, Path(tmp), n)) for n in range(args.pairs)]
    report: dict[str, Any] = {"scale": args.scale, "days": args.days, "pairs": pairs}
    for run in ("backfill", "next_day"):
        for key in ("wall_s", "cpu_s", "chargeback_cpu_s", "writer_cpu_s", "total_cpu_s"):
            with_ledger = _median(pairs, "ledger", run, key)
            without = _median(pairs, "no-ledger", run, key)
            report[f"{run}_{key}"] = {
                "ledger": with_ledger,
                "no_ledger": without,
                "ratio": round(with_ledger / without, 3) if without else None,
            }
    report["ledger_size"] = pairs[-1]["ledger_size"]
    write_report(report, args.out)


if __name__ == "__main__":
    main()
