# mypy: allow-untyped-defs
"""Per-topic metrics: received/sent bytes split exactly from the principals' bytes,
retained bytes per partition, internal topics, topics created and deleted, truth."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from ccloud_sim import INTERNAL_PREFIXES, RETAINED_METRIC, TOPIC_METRICS
from ccloud_sim.cli import main

PATH = "/v2/metrics/cloud/query"
REQ = "io.confluent.kafka.server/request_bytes"
RESP = "io.confluent.kafka.server/response_bytes"
RECEIVED, SENT = sorted(TOPIC_METRICS)
FIRST, END = date(2026, 2, 20), date(2026, 3, 12)
INTERVAL = f"{FIRST}T00:00:00Z/{END}T00:00:00Z"


def _body(metric: str, clusters: list[str], group_by: list[str], **extra: Any) -> dict[str, Any]:
    eqs = [{"field": "resource.kafka.id", "op": "EQ", "value": c} for c in clusters]
    body = {
        "aggregations": [{"metric": metric}],
        "filter": {"op": "OR", "filters": eqs},
        "granularity": "P1D",
        "group_by": group_by,
        "intervals": [INTERVAL],
        "limit": 1000,
    }
    body.update(extra)
    return body


async def _rows(client: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = None
    while True:
        r = await client.post(PATH, json=body, params={"page_token": token} if token else {})
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        token = r.json()["meta"]["pagination"].get("next_page_token")
        if not token:
            return rows


def _sum_by(rows: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = defaultdict(int)
    for row in rows:
        key = (row["timestamp"][:10], *(row[label] for label in labels))
        out[key] += int(row["value"])
    return dict(out)


def _ids(org) -> list[str]:
    return sorted(c.id for c in org.inventory.clusters)


class TestTopicBytes:
    @pytest.mark.parametrize(("topic_metric", "principal_metric"), [(RECEIVED, REQ), (SENT, RESP)])
    async def test_topics_of_a_cluster_day_sum_to_its_principals(
        self, client, org, topic_metric, principal_metric
    ):
        """Per cluster and day, the topics' bytes equal the principals' bytes exactly."""
        ids = _ids(org)
        topics = await _rows(
            client, _body(topic_metric, ids, ["resource.kafka.id", "metric.topic"])
        )
        principals = await _rows(
            client, _body(principal_metric, ids, ["resource.kafka.id", "metric.principal_id"])
        )
        by_topic = _sum_by(topics, "resource.kafka.id")
        by_principal = _sum_by(principals, "resource.kafka.id")
        assert len(by_principal) > 20
        assert by_topic == by_principal

    async def test_partitions_sum_to_their_topic(self, client, org):
        """Grouped by topic and partition, the partitions add up to the topic's figure."""
        ids = _ids(org)
        topics = await _rows(client, _body(RECEIVED, ids, ["resource.kafka.id", "metric.topic"]))
        parts = await _rows(
            client, _body(RECEIVED, ids, ["resource.kafka.id", "metric.topic", "metric.partition"])
        )
        assert len(parts) > len(topics)
        assert _sum_by(parts, "resource.kafka.id", "metric.topic") == _sum_by(
            topics, "resource.kafka.id", "metric.topic"
        )

    async def test_hours_sum_to_days(self, client, org):
        """PT1H topic and partition values add up to the P1D ones."""
        c = [org.inventory.clusters[0].id]
        for group in (["metric.topic"], ["metric.topic", "metric.partition"]):
            daily = await _rows(client, _body(SENT, c, group))
            hourly = await _rows(client, _body(SENT, c, group, granularity="PT1H"))
            assert len(hourly) > len(daily)
            assert _sum_by(hourly, *group) == _sum_by(daily, *group)

    async def test_filter_on_one_topic(self, client, org):
        """A metric.topic filter keeps that topic's rows only, with the same values."""
        c = org.inventory.clusters[0].id
        rows = await _rows(client, _body(RECEIVED, [c], ["metric.topic"]))
        topic = rows[0]["metric.topic"]
        flt = {
            "op": "AND",
            "filters": [
                {"field": "resource.kafka.id", "op": "EQ", "value": c},
                {"field": "metric.topic", "op": "EQ", "value": topic},
            ],
        }
        one = await _rows(client, _body(RECEIVED, [c], ["metric.topic"], filter=flt))
        assert one == [r for r in rows if r["metric.topic"] == topic]

    async def test_partition_is_no_label_of_principal_metrics(self, client, org):
        """group_by metric.partition on request_bytes is a bad query."""
        body = _body(REQ, _ids(org), ["metric.partition"])
        assert (await client.post(PATH, json=body)).status_code == 400


class TestRetained:
    async def test_partitions_and_levels_match_truth(self, client, org):
        """Distinct metric.partition values of retained_bytes are each topic's partitions,
        and the day's mean per topic is the truth's retained bytes."""
        c = org.inventory.clusters[0].id
        d = date(2026, 3, 5)
        one_day = [f"{d}T00:00:00Z/{d + timedelta(days=1)}T00:00:00Z"]
        group = ["metric.topic", "metric.partition"]
        rows = await _rows(client, _body(RETAINED_METRIC, [c], group, intervals=one_day))
        partitions: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            partitions[row["metric.topic"]].add(row["metric.partition"])
        truth = org.truth_topics(c, d)["topics"]
        assert {t: len(p) for t, p in partitions.items()} == {
            t: v["partitions"] for t, v in truth.items()
        }
        assert all(p == {str(i) for i in range(len(p))} for p in partitions.values())
        per_topic = _sum_by(rows, "metric.topic")
        assert per_topic == {(str(d), t): v["retained_bytes"] for t, v in truth.items()}

    async def test_gauge_is_averaged_over_time(self, client, org):
        """Hourly retained_bytes average to the daily value; ALL averages the days."""
        c = [org.inventory.clusters[0].id]
        daily = await _rows(client, _body(RETAINED_METRIC, c, ["metric.topic"]))
        hourly = await _rows(
            client, _body(RETAINED_METRIC, c, ["metric.topic"], granularity="PT1H")
        )
        whole = await _rows(client, _body(RETAINED_METRIC, c, ["metric.topic"], granularity="ALL"))
        hours: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in hourly:
            hours[(row["timestamp"][:10], row["metric.topic"])].append(row["value"])
        assert all(len(v) == 24 for v in hours.values())
        assert len(set(hours[next(iter(hours))])) > 1  # the gauge moves within a day
        assert {k: Decimal(sum(v)) / 24 for k, v in hours.items()} == {
            (r["timestamp"][:10], r["metric.topic"]): Decimal(r["value"]) for r in daily
        }
        days: dict[str, list[float]] = defaultdict(list)
        for row in daily:
            days[row["metric.topic"]].append(row["value"])
        for row in whole:
            series = days[row["metric.topic"]]
            assert row["value"] == pytest.approx(sum(series) / len(series), rel=1e-12)

    async def test_a_deleted_topic_stops_and_a_new_one_starts(self, client, org):
        """A topic deleted in the window has figures up to its deletion day only, and one
        created in it none before its creation day."""
        c = org.inventory.clusters[0].id
        first, end = date(2026, 1, 25), date(2026, 3, 14)
        topics = org.topics(c)
        gone = next(t for t in topics if t.life.deleted_at and first < t.life.last_day < end)
        new = next(t for t in topics if first < t.life.first_day < end)
        window = {"intervals": [f"{first}T00:00:00Z/{end}T00:00:00Z"]}
        rows = await _rows(client, _body(RETAINED_METRIC, [c], ["metric.topic"], **window))
        days = defaultdict(set)
        for row in rows:
            days[row["metric.topic"]].add(date.fromisoformat(row["timestamp"][:10]))
        assert max(days[gone.name]) == gone.life.last_day
        assert min(days[new.name]) == new.life.first_day
        received = await _rows(client, _body(RECEIVED, [c], ["metric.topic"], **window))
        late = [r for r in received if r["metric.topic"] == gone.name]
        assert late
        assert all(date.fromisoformat(r["timestamp"][:10]) <= gone.life.last_day for r in late)


class TestInternalTopics:
    def test_every_cluster_has_consumer_offsets(self, org):
        """Each cluster has __consumer_offsets (50 partitions), flagged internal."""
        for c in org.inventory.clusters:
            offsets = [t for t in org.topics(c.id) if t.name == "__consumer_offsets"]
            assert len(offsets) == 1
            assert offsets[0].internal
            assert offsets[0].partitions == 50

    def test_ksql_schemas_and_command_topics(self, org):
        """ksqlDB command topics, _schemas and _confluent-command exist where they belong."""
        names = {t.name for c in org.inventory.clusters for t in org.topics(c.id)}
        for k in org.inventory.ksql:
            assert f"_confluent-ksql-{k.id}_command_topic" in {
                t.name for t in org.topics(k.kafka_cluster_id)
            }
        assert "_schemas" in names
        assert "_confluent-command" in names
        for c in org.inventory.clusters:
            for t in org.topics(c.id):
                assert t.internal == t.name.startswith(INTERNAL_PREFIXES)

    async def test_internal_topics_carry_traffic_in_the_metrics(self, client, org):
        """__consumer_offsets shows up in received_bytes like any topic."""
        rows = await _rows(client, _body(RECEIVED, _ids(org), ["metric.topic"]))
        assert "__consumer_offsets" in {r["metric.topic"] for r in rows}


class TestTopicTruth:
    def test_network_lines_split_over_topics_exactly(self, org):
        """A network line's truth topics sum to its principals; storage and partition
        lines carry retained bytes and partition counts."""
        d = date(2026, 3, 5)
        seen = set()
        for t in org.truth(d):
            if t["line_type"] in ("KAFKA_NETWORK_WRITE", "KAFKA_NETWORK_READ"):
                assert sum(t["topics"].values()) == sum(t["principals"].values())
                write = t["line_type"] == "KAFKA_NETWORK_WRITE"
                assert t["topic_metric"] == ("received_bytes" if write else "sent_bytes")
                seen.add(t["topic_metric"])
            if t["line_type"] == "KAFKA_STORAGE":
                assert t["topic_metric"] == "retained_bytes"
                assert all(v > 0 for v in t["topics"].values())
                assert "__consumer_offsets" in t["internal_topics"]
            if t["line_type"] == "KAFKA_PARTITION":
                assert t["topic_metric"] == "partitions"
                truth = org.truth_topics(t["resource_id"], d)["topics"]
                assert t["topics"] == {n: v["partitions"] for n, v in truth.items()}
        assert seen == {"received_bytes", "sent_bytes"}

    def test_truth_command_prints_topics(self, org, capsys):
        """`ccloud-sim truth --topics CLUSTER --date D` prints the cluster-day's topics."""
        c = org.inventory.clusters[0].id
        args = ["truth", "--seed", "7", "--anchor", "2026-03-15", "--date", "2026-03-05"]
        assert main([*args, "--topics", c]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out == json.loads(json.dumps(org.truth_topics(c, date(2026, 3, 5))))
        assert sum(v["received_bytes"] for v in out["topics"].values()) == sum(
            w for w, _ in org.kafka_usage(c, date(2026, 3, 5)).values()
        )

    def test_truth_command_unknown_cluster(self, capsys):
        """An unknown cluster exits 1 with a message."""
        assert main(["truth", "--date", "2026-03-05", "--topics", "lkc-nope"]) == 1
        assert "lkc-nope" in capsys.readouterr().err
