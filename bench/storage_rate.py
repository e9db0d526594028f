"""The storage alone: ``SQLiteBackend.commit_date`` rate on real rows, against the floor.

Reads the chargeback rows of the first ``--dates`` dates of a backfilled database
(``bench.backfill --keep-db``), then in a fresh database commits them date by date
through ``SQLiteBackend.commit_date`` (no billing lines, no plugin rows: the
``chargeback_rows`` insert, its row_id range and the per-date transaction), and also inserts
the same rows, as plain 12-column tuples, with one ``executemany`` per date into a table
without an index. Prints rows/s of each and of the seven-column floor.

    .venv/bin/python -m bench.backfill --days 30 --keep-db /tmp/cache
    .venv/bin/python -m bench.storage_rate --db /tmp/cache/backfill-large-s1-d30.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from bench import sqlite_floor
from bench._harness import TENANT, quiet_logs
from chargeback.core.models import ChargebackRow
from chargeback.core.storage.sqlite import SQLiteBackend

_COLUMNS = (
    "tenant_id, date, line_id, identity_id, product_type, product_category, resource_id, "
    "env_id, cost_type, rule, amount, reason"
)


def load(db: Path, dates: int) -> dict[dt.date, list[ChargebackRow]]:
    """The chargeback rows of the first ``dates`` dates of ``db``."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        days = con.execute(
            "SELECT date, first_row_id, row_count FROM date_state WHERE tenant_id = ? "
            "ORDER BY date LIMIT ?",
            (TENANT, dates),
        ).fetchall()
        out: dict[dt.date, list[ChargebackRow]] = {}
        for text, first, count in days:
            day = dt.date.fromisoformat(text)
            rows = con.execute(
                f"SELECT {_COLUMNS} FROM chargeback_rows WHERE row_id >= ? AND row_id < ? "
                "ORDER BY row_id",
                (first, (first or 0) + count),
            ).fetchall()
            out[day] = [ChargebackRow(r[0], day, *r[2:]) for r in rows]
    finally:
        con.close()
    return out


async def via_backend(by_date: dict[dt.date, list[ChargebackRow]], path: Path) -> float:
    """Commit every date through the backend; return the seconds taken."""
    storage = SQLiteBackend(path)
    await storage.open()
    try:
        now = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        for day, rows in by_date.items():
            await storage.commit_date(
                TENANT, day, lines=(), rows=rows, plugin_rows=(), billing_fingerprint="b",
                settings_fingerprint="s", inventory_fingerprint="i", calculated_at=now,
            )  # fmt: skip
        return time.perf_counter() - t0
    finally:
        await storage.close()


def plain(by_date: dict[dt.date, list[ChargebackRow]], path: Path) -> float:
    """The same rows with one executemany per date into an unindexed 12-column table."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(f"CREATE TABLE t ({_COLUMNS})")
    params = {d: [(*r[:1], d.isoformat(), *r[2:]) for r in rows] for d, rows in by_date.items()}
    t0 = time.perf_counter()
    for batch in params.values():
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * 12)})", batch)
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def main() -> None:
    """Load, measure the three rates, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--dates", type=int, default=10)
    args = parser.parse_args()
    quiet_logs()
    by_date = load(args.db, args.dates)
    n = sum(len(r) for r in by_date.values())
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        backend_s = asyncio.run(via_backend(by_date, Path(tmp) / "backend.sqlite"))
        plain_s = plain(by_date, Path(tmp) / "plain.sqlite")
        floor = sqlite_floor.measure(n, Path(tmp))
    print(
        json.dumps(
            {
                "dates": len(by_date),
                "rows": n,
                "commit_date_rows_per_s": round(n / backend_s),
                "plain_12_columns_rows_per_s": round(n / plain_s),
                "floor_7_columns_rows_per_s": round(floor),
            }
        )
    )


if __name__ == "__main__":
    main()
