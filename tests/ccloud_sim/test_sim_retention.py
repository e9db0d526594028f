# mypy: allow-untyped-defs
"""The Metrics API's retention: points older than ``now - retention`` are absent."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import httpx
import pytest

from ccloud_sim import SimClock, create_app
from ccloud_sim.cli import _parser

PATH = "/v2/metrics/cloud/query"
REQ = "io.confluent.kafka.server/request_bytes"
RECEIVED = "io.confluent.kafka.server/received_bytes"
RETAINED = "io.confluent.kafka.server/retained_bytes"
# NOW is 2026-03-15T12:00Z: with 7 days, 2026-03-08 is kept from 12:00 on, 03-09 wholly.
INTERVAL = "2026-03-01T00:00:00Z/2026-03-12T00:00:00Z"


def _body(metric: str, cluster: str, **extra: Any) -> dict[str, Any]:
    group = "metric.topic" if metric != REQ else "metric.principal_id"
    body = {
        "aggregations": [{"metric": metric}],
        "filter": {"field": "resource.kafka.id", "op": "EQ", "value": cluster},
        "granularity": "P1D",
        "group_by": [group],
        "intervals": [INTERVAL],
        "limit": 1000,
    }
    body.update(extra)
    return body


async def _rows(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.post(PATH, json=body)
    assert r.status_code == 200, r.text
    assert "next_page_token" not in r.json()["meta"]["pagination"]
    rows: list[dict[str, Any]] = r.json()["data"]
    return rows


def _per_day(rows: list[dict[str, Any]], label: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        out[(row["timestamp"][:10], row[label])] += row["value"]
    return dict(out)


@pytest.fixture
async def kept(org, make_client, now):
    """A client of the default sim (7 days) and one that keeps everything."""
    default = create_app(org, clock=SimClock(now))
    forever = create_app(org, clock=SimClock(now), metrics_retention_days=None)
    async with make_client(default) as a, make_client(forever) as b:
        yield a, b


class TestRetention:
    def test_default_is_seven_days(self, org, now):
        """create_app keeps 7 days of metrics unless told otherwise, like Confluent Cloud."""
        assert create_app(org, clock=SimClock(now)).state.sim.metrics_retention_days == 7

    @pytest.mark.parametrize("metric", [REQ, RECEIVED])
    async def test_old_days_absent_recent_days_whole(self, kept, org, metric):
        """Days before the retention are absent; days inside it equal the unlimited answer."""
        short, forever = kept
        label = "metric.topic" if metric == RECEIVED else "metric.principal_id"
        c = org.inventory.clusters[0].id
        cut = _per_day(await _rows(short, _body(metric, c)), label)
        full = _per_day(await _rows(forever, _body(metric, c)), label)
        assert {d for d, _ in full} > {"2026-03-05", "2026-03-09"}
        assert {d for d, _ in cut} <= {"2026-03-08", "2026-03-09", "2026-03-10", "2026-03-11"}
        assert {k: v for k, v in full.items() if k[0] >= "2026-03-09"} == {
            k: v for k, v in cut.items() if k[0] >= "2026-03-09"
        }

    async def test_straddling_day_holds_only_retained_hours(self, kept, org):
        """The day the retention cuts through sums only its hours from now - 7 days on."""
        short, forever = kept
        c = org.inventory.clusters[0].id
        day = {"intervals": ["2026-03-08T00:00:00Z/2026-03-09T00:00:00Z"]}
        cut = _per_day(await _rows(short, _body(REQ, c, **day)), "metric.principal_id")
        hourly = await _rows(forever, _body(REQ, c, granularity="PT1H", **day))
        late = [r for r in hourly if r["timestamp"] >= "2026-03-08T12:00:00"]
        assert late
        assert cut == _per_day(late, "metric.principal_id")
        short_hourly = await _rows(short, _body(REQ, c, granularity="PT1H", **day))
        assert min(r["timestamp"] for r in short_hourly) == "2026-03-08T12:00:00.000Z"

    async def test_wholly_expired_range_is_an_empty_200(self, kept, org):
        """A range entirely older than the retention is answered 200 with no data."""
        short, _ = kept
        c = org.inventory.clusters[0].id
        body = _body(REQ, c, intervals=["2026-03-01T00:00:00Z/2026-03-05T00:00:00Z"])
        assert await _rows(short, body) == []

    async def test_expiry_follows_the_clock(self, org, now, make_client):
        """Advancing the clock by a day expires one more day of points."""
        clock = SimClock(now)
        app = create_app(org, clock=clock, metrics_retention_days=3)
        c = org.inventory.clusters[0].id
        # a gauge: every day of a cluster has points (traffic may skip a day)
        body = _body(RETAINED, c, intervals=["2026-03-01T00:00:00Z/2026-03-15T00:00:00Z"])
        async with make_client(app) as client:
            before = {r["timestamp"][:10] for r in await _rows(client, body)}
            clock.advance(timedelta(days=1))
            after = {r["timestamp"][:10] for r in await _rows(client, body)}
        assert min(before) == "2026-03-12"
        assert min(after) == "2026-03-13"
        assert after == before - {"2026-03-12"}

    async def test_gauge_expires_too(self, kept, org):
        """retained_bytes is cut at the retention like the counters."""
        short, forever = kept
        c = org.inventory.clusters[0].id
        body = _body(RETAINED, c)
        cut = {r["timestamp"][:10] for r in await _rows(short, body)}
        full = {r["timestamp"][:10] for r in await _rows(forever, body)}
        assert min(full) == "2026-03-01"
        assert min(cut) == "2026-03-08"

    def test_zero_days_refused_in_process(self, org):
        """create_app refuses 0 days (None is how unlimited is asked for)."""
        with pytest.raises(ValueError, match="None"):
            create_app(org, metrics_retention_days=0)


class TestRetentionFlag:
    @pytest.mark.parametrize(
        ("value", "days"), [("7", 7), ("30", 30), ("0", None), ("unlimited", None)]
    )
    def test_serve_flag(self, value, days):
        """--metrics-retention-days takes days, or 0 / 'unlimited' for no limit."""
        args = _parser().parse_args(["serve", "--metrics-retention-days", value])
        assert args.metrics_retention_days == days

    def test_serve_default_seven(self):
        """Without the flag the served sim keeps 7 days."""
        assert _parser().parse_args(["serve"]).metrics_retention_days == 7

    def test_negative_rejected(self, capsys):
        """A negative retention is a usage error."""
        with pytest.raises(SystemExit):
            _parser().parse_args(["serve", "--metrics-retention-days", "-2"])
        assert "unlimited" in capsys.readouterr().err
