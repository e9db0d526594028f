"""Shared harness of the reliability tests: ccloud_sim in-process, a real SQLite file, dumps.

Every test builds a :class:`SimHarness` (one sim app with a frozen clock, one database
file) through the ``make_harness`` fixture, runs real :class:`TenantRuntime`\\ s of the
Confluent Cloud plugin over it and compares databases with :func:`dump_db`, a plain
``sqlite3`` read of every table that holds results (run bookkeeping excluded).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ccloud_sim import Faults, SimClock, create_app
from chargeback.core.emitters.csv import make_csv_emitter
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, TenantConfig
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "rel"
API_KEY = "RELKEYQ7X2PLM9"
API_SECRET = "rel-S3cr3t-vQ9zW4kT7pLx2"  # distinctive: the secrets test greps for it

RESULT_TABLES = {
    "billing_lines": "tenant_id, date, line_id",
    "chargeback_rows": "tenant_id, date, line_id, identity_id, cost_type, rule, reason",
    "ccloud_billing": "tenant_id, date, env_id, line_id",
    "date_state": "tenant_id, date",
    "resources": "tenant_id, resource_id",
    "identities": "tenant_id, identity_id",
}
"""Tables compared between databases, with the order they are read in."""


_POSITIONS = frozenset({"row_id", "first_row_id"})
"""Where rows sit in the file, not what they say: a recalculated date's rows move."""


def _result_columns(conn: sqlite3.Connection, table: str) -> str:
    names = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    return ", ".join(n for n in names if n not in _POSITIONS)


def dump_db(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Read every result table of the database at ``path`` (sorted, run ids excluded)."""
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        # A process killed before a table's migration leaves no such table: no rows yet
        # (the comparisons still demand every stored date's rows).
        existing = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        out = {
            table: conn.execute(
                f"SELECT {_result_columns(conn, table)} FROM {table} ORDER BY {order}"
            ).fetchall()
            if table in existing
            else []
            for table, order in RESULT_TABLES.items()
        }
        out["emitted"] = (
            conn.execute(
                "SELECT tenant_id, emitter, date, emitted_seq FROM emissions ORDER BY 1, 2, 3"
            ).fetchall()
            if "emissions" in existing
            else []
        )
        return out
    finally:
        conn.close()


def check_db(path: Path) -> None:
    """Assert the file passes ``integrity_check``, has no duplicate rows, and conserves money.

    Conservation: per tenant-date, the chargeback rows sum to the billing lines, and
    ``date_state`` totals equal both; every line has rows (or is zero).
    """
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dup_lines = conn.execute(
            "SELECT tenant_id, date, line_id, COUNT(*) FROM billing_lines "
            "GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"
        ).fetchall()
        assert dup_lines == [], dup_lines
        dup_rows = conn.execute(
            "SELECT tenant_id, date, line_id, identity_id, cost_type, rule, reason, COUNT(*) "
            "FROM chargeback_rows GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING COUNT(*) > 1"
        ).fetchall()
        assert dup_rows == [], dup_rows
        per_line = conn.execute(
            "SELECT l.tenant_id, l.date, l.line_id, l.amount, COALESCE(SUM(r.amount), 0) "
            "FROM billing_lines l LEFT JOIN chargeback_rows r USING (tenant_id, date, line_id) "
            "GROUP BY 1, 2, 3 HAVING l.amount != COALESCE(SUM(r.amount), 0)"
        ).fetchall()
        assert per_line == [], per_line[:5]
        orphans = conn.execute(
            "SELECT DISTINCT r.tenant_id, r.date FROM chargeback_rows r "
            "LEFT JOIN date_state s USING (tenant_id, date) WHERE s.date IS NULL"
        ).fetchall()
        assert orphans == [], orphans
        # Each date's row_id range (what reads and the next commit use) holds exactly
        # its rows, and every row is in a range.
        ranges = conn.execute(
            "SELECT s.tenant_id, s.date, s.row_count, (SELECT COUNT(*) FROM chargeback_rows r "
            " WHERE r.row_id >= s.first_row_id AND r.row_id < s.first_row_id + s.row_count "
            " AND r.tenant_id = s.tenant_id AND r.date = s.date) FROM date_state s"
        ).fetchall()
        bad_ranges = [r for r in ranges if r[2] != r[3]]
        assert bad_ranges == [], bad_ranges[:5]
        stored = conn.execute("SELECT COUNT(*) FROM chargeback_rows").fetchone()[0]
        assert stored == sum(r[2] for r in ranges)
        totals = conn.execute(
            "SELECT s.date, s.billed_total, s.allocated_total, "
            "(SELECT COALESCE(SUM(amount), 0) FROM billing_lines l "
            " WHERE l.tenant_id = s.tenant_id AND l.date = s.date), "
            "(SELECT COALESCE(SUM(amount), 0) FROM chargeback_rows r "
            " WHERE r.tenant_id = s.tenant_id AND r.date = s.date) FROM date_state s"
        ).fetchall()
        bad = [t for t in totals if not t[1] == t[2] == t[3] == t[4]]
        assert bad == [], bad[:5]
    finally:
        conn.close()


def csv_files(root: Path) -> dict[str, bytes]:
    """Every CSV file under ``root`` by relative path (temp files would show up too)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


async def no_sleep(_: float) -> None:
    """Backoff waits take no time in tests."""


Transport = httpx.AsyncBaseTransport


@dataclass
class SimHarness:
    """One sim app (frozen clock) and one database file; ``runtime()`` builds a runtime."""

    app: Starlette
    clock: SimClock
    db_path: Path
    csv_dir: Path
    lookback_days: int = 14
    cutoff_days: int = 3
    settings: dict[str, Any] = field(default_factory=dict)
    transport: Transport | None = None
    storages: list[SQLiteBackend] = field(default_factory=list)
    runtimes: list[TenantRuntime] = field(default_factory=list)

    def now(self) -> dt.datetime:
        """The sim's current time (also the engine's clock)."""
        return self.clock.now()

    def window(self) -> tuple[dt.date, dt.date]:
        """``[first, end)`` of the calculated days."""
        today = self.now().date()
        first = today - dt.timedelta(days=self.lookback_days)
        return first, today - dt.timedelta(days=self.cutoff_days - 1)

    def days(self) -> list[dt.date]:
        """Every calculated day, oldest first."""
        first, end = self.window()
        return [first + dt.timedelta(days=i) for i in range((end - first).days)]

    def plugin_settings(self, **extra: Any) -> dict[str, Any]:
        """The tenant's plugin_settings (sim URLs, the distinctive credentials)."""
        return {
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "base_url": "http://sim",
            "telemetry_url": "http://sim",
            "flink_url": "http://sim",
            "http": {"requests_per_second": None, "max_retries": 8},
            **self.settings,
            **extra,
            # The sim keeps every day's usage (metrics_retention_days=None below).
            "metrics": {"retention_days": None, **self.settings.get("metrics", {}),
                        **extra.get("metrics", {})},
        }  # fmt: skip

    async def open_storage(self, **kw: Any) -> SQLiteBackend:
        """Open (and remember, to close later) a backend on the harness's file."""
        storage = SQLiteBackend(self.db_path, **kw)
        await storage.open()
        self.storages.append(storage)
        return storage

    async def runtime(
        self,
        storage: SQLiteBackend | None = None,
        *,
        transport: Transport | None = None,
        csv: bool = True,
        **extra: Any,
    ) -> TenantRuntime:
        """A fresh TenantRuntime (new plugin instance) over the sim and the database."""
        storage = storage or await self.open_storage()
        inner = transport or self.transport or httpx.ASGITransport(app=self.app)
        plugin = ConfluentCloudPlugin(transport=inner, sleep=no_sleep)
        config = TenantConfig(
            name=TENANT,
            ecosystem="confluent_cloud",
            plugin_settings=self.plugin_settings(**extra),
            lookback_days=self.lookback_days,
            cutoff_days=self.cutoff_days,
            run_timeout_s=60.0,
        )
        emitters = [NamedEmitter("csv", make_csv_emitter(str(self.csv_dir)))] if csv else []
        runtime = TenantRuntime(config, plugin, storage, emitters, clock=self.now)
        self.runtimes.append(runtime)
        return runtime

    async def aclose(self) -> None:
        """Close every runtime and storage this harness opened."""
        for runtime in self.runtimes:
            await runtime.aclose()
        for storage in self.storages:
            await storage.close()
        self.runtimes.clear()
        self.storages.clear()


HarnessFactory = Callable[..., SimHarness]


def make_sim(seed: int = 5, scale: str = "tiny", faults: Faults | None = None) -> Starlette:
    """A sim app at :data:`NOW` that accepts the distinctive credentials."""
    return create_app(
        seed=seed,
        scale=scale,
        clock=SimClock(NOW),
        faults=faults,
        credentials={API_KEY: API_SECRET},
        metrics_retention_days=None,  # backfills expect usage on every day (no ledger yet)
    )


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Build harnesses (``name`` picks the files); everything is closed afterwards."""
    made: list[SimHarness] = []

    def make(
        *,
        name: str = "db",
        seed: int = 5,
        scale: str = "tiny",
        faults: Faults | None = None,
        db_dir: Path | None = None,
        **kw: Any,
    ) -> SimHarness:
        app = make_sim(seed, scale, faults)
        folder = db_dir or tmp_path
        harness = SimHarness(
            app, app.state.clock, folder / f"{name}.sqlite", tmp_path / f"{name}-csv", **kw
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.aclose()


Rewrite = Callable[[httpx.Request, int, bytes], "tuple[int, bytes] | None"]


def rewriting_transport(app: Starlette, rewrite: Rewrite) -> httpx.MockTransport:
    """A MockTransport that asks the sim (ASGITransport) and may replace its answer.

    ``rewrite(request, status, body)`` returns ``(status, body)`` to serve instead, or
    ``None`` to pass the sim's response through.
    """
    inner = httpx.ASGITransport(app=app)

    async def handler(request: httpx.Request) -> httpx.Response:
        response = await inner.handle_async_request(request)
        body = await response.aread()
        replaced = rewrite(request, response.status_code, body)
        if replaced is None:
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        status, new_body = replaced
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() != "content-length"
        ]
        return httpx.Response(status, headers=headers, content=new_body)

    return httpx.MockTransport(handler)
