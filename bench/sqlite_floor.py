"""The floor to compare with: raw SQLite insert rate of seven-column rows (DESIGN §12).

One ``executemany`` of N prepared tuples into an empty WAL table, in one transaction,
with the same pragmas the store uses. Prints rows/s as JSON; ``--runs`` repeats it and
reports the median, because this machine is shared and noisy.

    .venv/bin/python bench/sqlite_floor.py --rows 500000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def measure(rows: int, directory: Path) -> float:
    """Insert ``rows`` seven-column rows into a fresh database; return rows per second."""
    path = directory / f"floor-{time.monotonic_ns()}.db"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE t (tenant TEXT, date TEXT, line TEXT, identity TEXT, "
        "product TEXT, cost_type TEXT, amount INTEGER)"
    )
    data = [
        (
            "tenant",
            "2026-01-01",
            f"line-{i // 20}",
            f"sa-{i % 3000}",
            "KAFKA_NETWORK_READ",
            "usage",
            i,
        )
        for i in range(rows)
    ]
    start = time.perf_counter()
    con.execute("BEGIN")
    con.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?)", data)
    con.execute("COMMIT")
    elapsed = time.perf_counter() - start
    con.close()
    return rows / elapsed


def main() -> None:
    """Run the measurement and print the median rows/s."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rates = [measure(args.rows, Path(tmp)) for _ in range(args.runs)]
    print(
        json.dumps(
            {
                "rows": args.rows,
                "runs": args.runs,
                "median_rows_per_s": round(statistics.median(rates)),
                "all_rows_per_s": [round(r) for r in rates],
            }
        )
    )


if __name__ == "__main__":
    main()
