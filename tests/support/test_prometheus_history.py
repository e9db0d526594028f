"""Smoke tests: backfilled history in a real Prometheus answers range and past queries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.support.plugin import PrometheusFactory
from tests.support.process import ServiceStartError
from tests.support.prometheus import (
    MetricHistory,
    Point,
    backfill,
    openmetrics_text,
    start_prometheus,
    stop_prometheus,
)

pytestmark = pytest.mark.e2e

FIRST = dt.date(2026, 10, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(30)]
# A label value with every character OpenMetrics escapes, to prove the round trip.
TEAMS = {"payments": 10.0, "search": 20.0, 'odd "team"\\ with\nnewline': 30.0}


def cost(team: str, day_index: int) -> float:
    """The known daily cost of a team: its base plus a quarter per day."""
    return TEAMS[team] + day_index * 0.25


def bytes_total(team: str, day_index: int) -> int:
    """The known counter of a team: grows by (base * 1000) bytes a day."""
    return int(TEAMS[team] * 1000) * (day_index + 1)


def history() -> list[MetricHistory]:
    """30 days of a daily gauge and a counter for three teams."""
    return [
        MetricHistory(
            "chargeback_daily_cost",
            "gauge",
            "Cost of one day",
            [Point({"team": t}, day, cost(t, i)) for t in TEAMS for i, day in enumerate(DAYS)],
        ),
        MetricHistory(
            "chargeback_bytes",
            "counter",
            "Bytes so far",
            [
                Point({"team": t, "cluster": "lkc-1"}, DAYS[i], bytes_total(t, i))
                for t in TEAMS
                for i in reversed(range(30))  # newest first on purpose: the writer sorts
            ],
        ),
    ]


class TestPrometheusHistory:
    def test_range_query_returns_one_known_point_per_day(
        self, prometheus_history: PrometheusFactory
    ) -> None:
        """query_range with step 1d over the 30 days gives each day's known value per team."""
        server = prometheus_history(history())
        result = server.query_range("chargeback_daily_cost", DAYS[0], DAYS[-1], "1d")
        by_team = {series["metric"]["team"]: series["values"] for series in result}
        assert set(by_team) == set(TEAMS)
        for team, values in by_team.items():
            assert [float(v) for _, v in values] == [cost(team, i) for i in range(30)]
            expected_times = [
                dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp() for d in DAYS
            ]
            assert [t for t, _ in values] == expected_times

    def test_instant_query_at_a_past_time_and_increase(
        self, prometheus_history: PrometheusFactory
    ) -> None:
        """At day 10 the counter has day 10's value; increase over 1d is one day's bytes."""
        server = prometheus_history(history())
        day10 = dt.datetime(2026, 10, 11, tzinfo=dt.UTC)
        at = {s["metric"]["team"]: float(s["value"][1]) for s in
              server.query("chargeback_bytes_total", at=day10)}  # fmt: skip
        assert at == {team: float(bytes_total(team, 10)) for team in TEAMS}
        grown = server.query('increase(chargeback_bytes_total{team="search"}[1d])', at=day10)
        assert float(grown[0]["value"][1]) == pytest.approx(20_000.0, rel=1e-9)
        noon = day10 + dt.timedelta(hours=12)
        assert server.query("chargeback_daily_cost", at=noon) == []  # 5 min lookback only
        assert len(server.query("last_over_time(chargeback_daily_cost[1d])", at=noon)) == 3

    def test_raw_openmetrics_text_is_accepted(self, prometheus_history: PrometheusFactory) -> None:
        """Hand-written OpenMetrics text (what `chargeback export openmetrics` will write) loads."""
        text = '# TYPE cb_x gauge\ncb_x{t="a"} 1 1790812800\ncb_x{t="a"} 2 1790899200\n# EOF\n'
        server = prometheus_history(text)
        values = server.query_range("cb_x", 1790812800, 1790899200, "1d")[0]["values"]
        assert values == [[1790812800, "1"], [1790899200, "2"]]

    def test_default_retention_would_drop_old_blocks(self, tmp_path: Path) -> None:
        """Why the helper sets a long retention: with 15 d, half of a 30-day backfill vanishes."""
        tsdb = tmp_path / "tsdb"
        backfill(openmetrics_text(history()), tsdb, max_block_duration="2h")
        server = start_prometheus(tsdb, retention="15d")
        try:
            result = server.query_range("chargeback_daily_cost", DAYS[0], DAYS[-1], "1d")
        finally:
            stop_prometheus(server)
        assert 0 < len(result[0]["values"]) < 30


class TestOpenMetricsWriter:
    def test_labels_are_escaped_and_eof_ends_the_text(self) -> None:
        """Quotes, backslashes and newlines in label values are escaped; # EOF comes last."""
        text = openmetrics_text(history())
        assert 'team="odd \\"team\\"\\\\ with\\nnewline"' in text
        assert text.endswith("# EOF\n")
        assert "# TYPE chargeback_bytes counter" in text
        assert 'chargeback_bytes_total{cluster="lkc-1",team="payments"} 1000' in text

    def test_duplicate_timestamps_are_refused(self) -> None:
        """Two samples of one series at one time raise (promtool would drop one silently)."""
        day = dt.date(2026, 10, 1)
        twice = MetricHistory("x", "gauge", "x", [Point({}, day, 1), Point({}, day, 2)])
        with pytest.raises(ValueError, match="two samples"):
            openmetrics_text([twice])

    def test_bad_names_and_naive_times_are_refused(self) -> None:
        """Invalid metric or label names, a counter named *_total and naive datetimes raise."""
        day = dt.date(2026, 10, 1)
        for bad, complaint in (
            (MetricHistory("1x", "gauge", "", [Point({}, day, 1)]), "invalid metric name"),
            (MetricHistory("x", "gauge", "", [Point({"a-b": "v"}, day, 1)]), "invalid label"),
            (MetricHistory("x_total", "counter", "", [Point({}, day, 1)]), "without _total"),
            (MetricHistory("x", "gauge", "", [Point({}, dt.datetime(2026, 10, 1), 1)]), "naive"),
        ):
            with pytest.raises(ValueError, match=complaint):
                openmetrics_text([bad])

    def test_a_server_that_cannot_start_fails_with_its_log(self, tmp_path: Path) -> None:
        """A bad flag value makes start_prometheus raise with Prometheus's own error."""
        tsdb = tmp_path / "tsdb"
        tsdb.mkdir()
        with pytest.raises(ServiceStartError) as failed:
            start_prometheus(tsdb, retention="forever")
        assert "exited with code" in str(failed.value)
        assert "forever" in failed.value.log
