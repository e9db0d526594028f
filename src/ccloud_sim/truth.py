"""Ground truth: which identities produced a billing row, and how much.

``explain(org, line)`` returns a JSON-ready dict::

    {
      "line_id": "cost-…", "date": "2026-03-01", "line_type": "KAFKA_NETWORK_WRITE",
      "product": "KAFKA", "resource_id": "lkc-…", "quantity": "12.345", "amount": "0.61725",
      "basis": "request_bytes",          # see below
      "metric": "io.confluent.kafka.server/request_bytes",   # or null
      "unit": "bytes",                    # bytes | cfu_minutes | null
      "principals": {"sa-…": 123000000, "ABCD…KEY": 5000000, "sa-zz…": 1000000},
      "owners": {"sa-…": 128000000, "sa-zz…": 1000000},   # API keys mapped to owners
      "unknown_principals": ["sa-zz…"],  # not known to IAM
      "details": {…}
    }

``basis`` values: ``request_bytes`` / ``response_bytes`` (network rows; the sum of
``principals`` equals the row group's quantity * 10**9), ``kafka_shared`` (cluster
capacity rows; principals = request + response bytes that day), ``flink`` (CFU-minutes
per statement principal; ``details.statements`` per statement), ``owner`` (connector
rows: the service account or API-key owner), ``ksql`` (credential identity),
``sr_keys`` (owners of API keys on the Schema Registry that day) and ``none``
(org-wide rows). Tier rows share the group totals; ``details.group_quantity`` is the
sum of the group's rows.

Kafka cluster rows also carry the topic split (every topic alive that day, internal
ones included and listed in ``internal_topics``)::

      "topic_metric": "received_bytes",   # see below
      "topics": {"payments.ledger.created": 120000000, "__consumer_offsets": 900000, …},
      "internal_topics": ["__consumer_offsets"],

``topic_metric`` is ``received_bytes`` for ``KAFKA_NETWORK_WRITE`` and ``sent_bytes``
for ``KAFKA_NETWORK_READ`` (the topics then sum exactly to the principals),
``retained_bytes`` (the day's mean, bytes) for ``KAFKA_STORAGE``, ``partitions`` (a
count) for ``KAFKA_PARTITION``, and ``received_bytes+sent_bytes`` for every other
cluster row (capacity, REST, streams, links, Tableflow, USM). :func:`topics_of` gives
a cluster-day's whole topic picture.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import TYPE_CHECKING, Any

from ccloud_sim._det import fmt_ts

if TYPE_CHECKING:
    from ccloud_sim.billing import Line
    from ccloud_sim.org import Organization

__all__ = ["explain", "topics_of"]

_METRICS = {
    "request_bytes": "io.confluent.kafka.server/request_bytes",
    "response_bytes": "io.confluent.kafka.server/response_bytes",
    "flink": "io.confluent.flink/statement_utilization/cfu_minutes_consumed",
}


def explain(org: Organization, line: Line) -> dict[str, Any]:
    """The ground truth of one final billing row of *org*."""
    kind, rid = line.basis
    d = line.day
    principals: dict[str, int] = {}
    details: dict[str, Any] = {}
    unit: str | None = None
    if kind in ("request_bytes", "response_bytes", "kafka_shared"):
        unit = "bytes"
        for p, (w, r) in org.kafka_usage(rid, d).items():
            value = {"request_bytes": w, "response_bytes": r}.get(kind, w + r)
            if value:
                principals[p] = value
        group = [
            x.quantity
            for x in org.billing_lines(d)
            if x.line_type == line.line_type and x.resource_id == rid and x.quantity is not None
        ]
        details["group_quantity"] = str(sum(group))
    elif kind == "flink":
        unit = "cfu_minutes"
        statements = {}
        for name, (principal, minutes) in org.flink_usage(rid, d).items():
            statements[name] = {"principal": principal, "cfu_minutes": minutes}
            principals[principal] = principals.get(principal, 0) + minutes
        details["statements"] = statements
    elif kind == "owner":
        cn = org.connectors[rid]
        principals[cn.owner_id] = 1
        details.update(
            connector=cn.name,
            auth_mode=cn.auth_mode,
            principal_id=cn.principal_id,
            masked=cn.masked,
        )
    elif kind == "ksql":
        principals[org.ksql[rid].credential_identity] = 1
    elif kind == "sr_keys":
        for k in org.inventory.api_keys:
            if k.resource_id == rid and k.life.alive_on(d):
                principals[k.owner_id] = principals.get(k.owner_id, 0) + 1
    owners, unknown = _owners(org, principals)
    out = {
        "line_id": line.id,
        "date": d.isoformat(),
        "line_type": line.line_type,
        "product": line.product,
        "resource_id": line.resource_id,
        "quantity": None if line.quantity is None else str(line.quantity),
        "amount": str(line.amount),
        "basis": kind,
        "metric": _METRICS.get(kind),
        "unit": unit,
        "principals": dict(sorted(principals.items())),
        "owners": dict(sorted(owners.items())),
        "unknown_principals": sorted(unknown),
        "details": details,
    }
    if kind in ("request_bytes", "response_bytes", "kafka_shared"):
        out.update(_topic_split(org, line))
    return out


def _topic_split(org: Organization, line: Line) -> dict[str, Any]:
    _, cid = line.basis
    d = line.day
    alive = [t for t in org.topics(cid) if t.life.alive_on(d)]
    traffic = org.topic_bytes(cid, d)
    if line.line_type == "KAFKA_NETWORK_WRITE":
        metric, split = "received_bytes", {n: v[0] for n, v in traffic.items() if v[0]}
    elif line.line_type == "KAFKA_NETWORK_READ":
        metric, split = "sent_bytes", {n: v[1] for n, v in traffic.items() if v[1]}
    elif line.line_type == "KAFKA_STORAGE":
        metric, split = "retained_bytes", {n: sum(v) for n, v in org.retained(cid, d).items()}
    elif line.line_type == "KAFKA_PARTITION":
        metric, split = "partitions", {t.name: t.partitions for t in alive}
    else:
        metric, split = "received_bytes+sent_bytes", {n: a + b for n, (a, b) in traffic.items()}
    return {
        "topic_metric": metric,
        "topics": dict(sorted(split.items())),
        "internal_topics": sorted(t.name for t in alive if t.internal),
    }


def topics_of(org: Organization, cluster_id: str, d: date) -> dict[str, Any]:
    """Every topic of *cluster_id* alive on *d*: team, partitions and the day's figures.

    Raises:
        KeyError: if the organization has no such cluster.
    """
    if cluster_id not in org.clusters:
        raise KeyError(f"no Kafka cluster {cluster_id!r} in this organization")
    traffic = org.topic_bytes(cluster_id, d)
    retained = org.retained(cluster_id, d)
    topics: dict[str, Any] = {}
    for t in org.topics(cluster_id):
        if not t.life.alive_on(d):
            continue
        received, sent = traffic.get(t.name, (0, 0))
        topics[t.name] = {
            "team": t.team,
            "internal": t.internal,
            "partitions": t.partitions,
            "received_bytes": received,
            "sent_bytes": sent,
            "retained_bytes": sum(retained.get(t.name, ())),
            "created_at": fmt_ts(t.life.created_at),
            "deleted_at": None if t.life.deleted_at is None else fmt_ts(t.life.deleted_at),
        }
    return {"cluster_id": cluster_id, "date": d.isoformat(), "topics": topics}


def _owners(org: Organization, principals: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    known = org.identity_ids()
    owners: dict[str, int] = defaultdict(int)
    unknown: list[str] = []
    for p, v in principals.items():
        key = org.api_keys.get(p)
        owner = key.owner_id if key is not None else p
        if key is None and p not in known:
            unknown.append(p)
        owners[owner] += v
    return dict(owners), unknown
