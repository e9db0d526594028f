"""Where the backfill's memory goes: tracemalloc peaks and a snapshot of the live sites.

Runs one backfill (in-process sim, empty database) with ``tracemalloc`` on and takes
a snapshot when the first date is allocated, the moment every billing line and every
usage table of the run is in memory, then prints the largest allocation sites
grouped by source line, and the traced peaks before and during the allocation
phase. The sim lives in the same process; its sites are listed too
(``ccloud_sim/...``) so they can be told apart.

    .venv/bin/python -m bench.memory --scale medium --days 90 --top 25
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from bench._harness import Sim, quiet_logs
from bench.backfill import lookback_for
from chargeback.core.engine import allocation


async def _run(scale: str, days: int, db: Path, marks: dict[str, float]) -> tracemalloc.Snapshot:
    sim = Sim(scale=scale)
    runtime, storage = await sim.runtime(db, lookback_days=lookback_for(days))
    taken: list[tracemalloc.Snapshot] = []
    original = allocation.Dispatcher.allocate_date

    def snapshot_first(self: allocation.Dispatcher, *args: Any, **kwargs: Any) -> Any:
        if not taken:
            taken.append(tracemalloc.take_snapshot())
            marks["at_first_allocation_mb"] = tracemalloc.get_traced_memory()[0] / 2**20
            marks["peak_before_allocation_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.reset_peak()
        return original(self, *args, **kwargs)

    allocation.Dispatcher.allocate_date = snapshot_first  # type: ignore[method-assign]
    try:
        await runtime.run("backfill")
    finally:
        allocation.Dispatcher.allocate_date = original  # type: ignore[method-assign]
        await runtime.aclose()
        await storage.close()
    return taken[0]


def main() -> None:
    """Run, snapshot, print the top allocation sites as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    quiet_logs()
    tracemalloc.start(1)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        marks: dict[str, float] = {}
        snap = asyncio.run(_run(args.scale, args.days, Path(tmp) / "db.sqlite", marks))
        marks["peak_during_allocation_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
    stats = snap.statistics("lineno")
    total = sum(s.size for s in stats)
    top = [
        {
            "site": f"{s.traceback[0].filename.split('/src/')[-1]}:{s.traceback[0].lineno}",
            "mb": round(s.size / 2**20, 1),
            "blocks": s.count,
        }
        for s in stats[: args.top]
    ]
    rounded = {k: round(v, 1) for k, v in marks.items()}
    print(
        json.dumps(
            {"scale": args.scale, "days": args.days, "snapshot_mb": total / 2**20, **rounded}
        )
    )
    for entry in top:
        print(json.dumps(entry))


if __name__ == "__main__":
    main()
