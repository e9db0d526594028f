"""Helper for the crash-safety test: commit one big date over and over, alternating versions.

Usage: ``python commit_loop.py DB_PATH ROWS``. Version "A" has ROWS rows of amount 1,
version "B" ROWS rows of amount 2 (10 rows per billing line); the date's billing
fingerprint names the version. After each commit it prints ``committed <calc_seq>``.
The test SIGKILLs this process at random moments.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.storage.sqlite import SQLiteBackend

TENANT = "crash"
DAY = dt.date(2024, 5, 1)
ROWS_PER_LINE = 10


def build(version: str, n_rows: int) -> tuple[list[BillingLineItem], list[ChargebackRow]]:
    """Return the lines and rows of one version."""
    unit = 1 if version == "A" else 2
    n_lines = n_rows // ROWS_PER_LINE
    lines = [
        BillingLineItem(
            f"{version}-{i:06d}", DAY, "KAFKA_NETWORK_READ", "KAFKA", unit * ROWS_PER_LINE
        )
        for i in range(n_lines)
    ]
    rows = [
        ChargebackRow(
            TENANT,
            DAY,
            line.line_id,
            f"sa-{j}",
            line.product_type,
            "KAFKA",
            None,
            None,
            "usage",
            version,
            unit,
            None,
        )
        for line in lines
        for j in range(ROWS_PER_LINE)
    ]
    return lines, rows


async def main(path: str, n_rows: int) -> None:
    """Commit versions A and B in turn forever."""
    versions = {v: build(v, n_rows) for v in ("A", "B")}
    async with SQLiteBackend(path) as store:
        k = 0
        while True:
            version = "AB"[k % 2]
            lines, rows = versions[version]
            state = await store.commit_date(
                TENANT, DAY, lines=lines, rows=rows, plugin_rows=[],
                billing_fingerprint=version, settings_fingerprint="s",
                inventory_fingerprint="i", calculated_at=dt.datetime.now(dt.UTC),
            )  # fmt: skip
            print(f"committed {state.calc_seq}", flush=True)
            k += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
