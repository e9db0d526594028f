"""``chargeback export openmetrics``: daily history that a real Prometheus backfills."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from tests.integration.api.conftest import FIRST_DAY, LAST_DAY, TENANT
from tests.support.plugin import PrometheusFactory

from chargeback.core.query import GroupRow
from chargeback.core.query.aggregate import DayTotal
from chargeback.core.query.openmetrics import DailyHistory, render_openmetrics
from chargeback.core.storage.sqlite import SQLiteBackend

ONE_DAY = dt.timedelta(days=1)


def export(tmp_path: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "settings.yaml"
    config.write_text(
        f"storage: {{path: {db}}}\n"
        f"tenants:\n  {TENANT}:\n    ecosystem: confluent_cloud\n"
        "    plugin_settings: {api_key: KEY, api_secret: SECRET}\n",
        encoding="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "chargeback.cli", "export", "openmetrics",
         "--config", str(config), "--tenant", TENANT, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


class TestRendering:
    def test_series_are_in_time_order_escaped_and_end_with_eof(self) -> None:
        """Each series' samples ascend in time; label values are escaped; # EOF closes."""
        day1, day2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
        groups = [
            GroupRow(day2, ('sa "q"\\x', "KAFKA_BASE", "usage", ""), "usage", 5),
            GroupRow(day1, ('sa "q"\\x', "KAFKA_BASE", "usage", ""), "usage", -3),
        ]
        text = "".join(render_openmetrics([DailyHistory("t", groups, [DayTotal(day1, 7, 7, 0)])]))
        lines = text.splitlines()
        cost = [line for line in lines if line.startswith("chargeback_cost_daily{")]
        assert cost[0].endswith(
            f" -0.000000003 {int(dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp())}"
        )
        assert cost[1].split()[-2] == "0.000000005"
        assert 'identity="sa \\"q\\"\\\\x"' in cost[0]
        assert lines[-1] == "# EOF"
        assert 'chargeback_billed_daily{tenant="t"} 0.000000007 ' in text


class TestBackfill:
    def test_prometheus_returns_one_point_per_day(
        self, tmp_path: Path, sim_db: Path, prometheus_history: PrometheusFactory
    ) -> None:
        """promtool accepts the export; a 1d range query returns each calculated day once."""
        out = tmp_path / "history.om"
        done = export(tmp_path, sim_db, "--from", str(FIRST_DAY - ONE_DAY), "--to",
                      str(LAST_DAY), "--output", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "8 days exported, 1 not calculated" in done.stderr
        server = prometheus_history(out.read_text(encoding="utf-8"))
        billed = server.query_range(
            f'chargeback_billed_daily{{tenant="{TENANT}"}}', FIRST_DAY - ONE_DAY, LAST_DAY, "1d"
        )
        (series,) = billed
        days = [dt.datetime.fromtimestamp(t, dt.UTC).date() for t, _ in series["values"]]
        assert days == [FIRST_DAY + ONE_DAY * i for i in range(8)]
        by_identity = server.query_range(
            "sum by (identity) (chargeback_cost_daily)", FIRST_DAY, LAST_DAY, "1d"
        )
        assert all(len(s["values"]) <= 8 for s in by_identity)
        total = server.query_range("sum(chargeback_cost_daily)", FIRST_DAY, LAST_DAY, "1d")
        got = [Decimal(v) for _, v in total[0]["values"]]
        want = [Decimal(v) for _, v in series["values"]]
        assert all(abs(a - b) < Decimal("0.001") for a, b in zip(got, want, strict=True))

    async def test_the_export_holds_every_row_exactly(self, tmp_path: Path, sim_db: Path) -> None:
        """Summed per day, the exported cost samples equal the stored rows to the nano."""
        done = export(tmp_path, sim_db, "--from", str(FIRST_DAY), "--to", str(LAST_DAY))
        assert done.returncode == 0, done.stderr
        sums: dict[int, Decimal] = defaultdict(Decimal)
        for line in done.stdout.splitlines():
            if line.startswith("chargeback_cost_daily{"):
                value, seconds = line.rsplit(" ", 2)[1:]
                sums[int(seconds)] += Decimal(value)
        async with SQLiteBackend(sim_db, read_only=True) as storage:
            states = await storage.get_date_states(TENANT, FIRST_DAY, LAST_DAY + ONE_DAY)
        for day, state in states.items():
            stamp = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
            assert sums[stamp] == Decimal(state.allocated_total).scaleb(-9)

    def test_unknown_tenant_exits_2(self, tmp_path: Path, sim_db: Path) -> None:
        """A tenant not in the settings is named, exit 2."""
        config_run = export(tmp_path, sim_db, "--tenant", "nobody")
        assert config_run.returncode == 2
        assert "'nobody'" in config_run.stderr
