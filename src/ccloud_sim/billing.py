"""Daily billing lines (``billing.v1.Cost``), generated lazily per date.

Money is :class:`~decimal.Decimal` throughout: ``price`` has at most 4 decimals and
``quantity`` is chosen so ``price * quantity`` has at most 6, hence
``original_amount == price * quantity`` exactly, ``discount_amount`` is rounded to
6 decimals and ``amount == original_amount - discount_amount`` exactly. Every value
survives the JSON float round trip ``Decimal(str(float(x))) == x``.

Late data: for a date whose end lies ``h < 72`` hours before "now" only part of
the rows are visible and quantities are scaled down (see :func:`as_of`); from 72 h
on the rows are final.
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from ccloud_sim._det import day_start, rng, unit_float
from ccloud_sim.usage import MB

if TYPE_CHECKING:
    from ccloud_sim.org import Organization

__all__ = ["LINE_TYPES", "SETTLE_HOURS", "Line", "as_of", "settled_lines"]

SETTLE_HOURS = 72
LINE_TYPES = (
    "KAFKA_NUM_CKUS",
    "KAFKA_BASE",
    "KAFKA_PARTITION",
    "KAFKA_STORAGE",
    "KAFKA_NETWORK_READ",
    "KAFKA_NETWORK_WRITE",
    "KAFKA_REST_PRODUCE",
    "KAFKA_STREAMS",
    "CONNECT_CAPACITY",
    "CONNECT_NUM_TASKS",
    "CONNECT_THROUGHPUT",
    "CONNECT_NUM_RECORDS",
    "CUSTOM_CONNECT_NUM_TASKS",
    "CUSTOM_CONNECT_THROUGHPUT",
    "KSQL_NUM_CSUS",
    "FLINK_NUM_CFUS",
    "SCHEMA_REGISTRY",
    "GOVERNANCE_BASE",
    "NUM_RULES",
    "CLUSTER_LINKING_PER_LINK",
    "CLUSTER_LINKING_READ",
    "CLUSTER_LINKING_WRITE",
    "TABLEFLOW_DATA_PROCESSED",
    "TABLEFLOW_NUM_TOPICS",
    "TABLEFLOW_STORAGE",
    "USM_CONNECTED_NODE",
    "AUDIT_LOG_READ",
    "SUPPORT",
    "PROMO_CREDIT",
)

_Q6 = Decimal("0.000001")
_TIER_GB = Decimal(10)
_NET_PRICE = {"INTERNET": Decimal("0.05"), "PRIVATE_LINK": Decimal("0.04")}


class Line(NamedTuple):
    """One cost row. ``basis`` tells :mod:`ccloud_sim.truth` what produced it."""

    id: str
    day: date
    product: str | None
    line_type: str
    price: Decimal | None
    unit: str | None
    quantity: Decimal | None
    original_amount: Decimal
    discount_amount: Decimal
    amount: Decimal
    basis: tuple[str, str]
    network_access_type: str | None = None
    description: str | None = None
    tier_dimensions: tuple[tuple[str, str], ...] | None = None
    resource_id: str | None = None
    resource_name: str | None = None
    env_id: str | None = None
    resource_mode: str = "object"

    def to_json(self) -> dict[str, Any]:
        """The ``billing.v1.Cost`` JSON object (numbers as JSON numbers)."""
        out: dict[str, Any] = {
            "api_version": "billing/v1",
            "kind": "Cost",
            "id": self.id,
            "start_date": self.day.isoformat(),
            "end_date": (self.day + timedelta(days=1)).isoformat(),
            "granularity": "DAILY",
            "product": self.product,
            "line_type": self.line_type,
        }
        if self.network_access_type is not None:
            out["network_access_type"] = self.network_access_type
        out["price"] = _num(self.price)
        out["unit"] = self.unit
        out["quantity"] = _num(self.quantity)
        out["original_amount"] = float(self.original_amount)
        out["discount_amount"] = float(self.discount_amount)
        out["amount"] = float(self.amount)
        if self.description is not None:
            out["description"] = self.description
        if self.tier_dimensions is not None:
            out["tier_dimensions"] = dict(self.tier_dimensions)
        if self.resource_mode == "object":
            out["resource"] = {
                "id": self.resource_id,
                "display_name": self.resource_name,
                "environment": {"id": self.env_id} if self.env_id else None,
            }
        elif self.resource_mode == "null":
            out["resource"] = None
        return out

    def to_json_text(self) -> str:
        """``json.dumps(self.to_json())`` equivalent, compact and fast."""
        parts = [
            '{"api_version":"billing/v1","kind":"Cost","id":"',
            self.id,
            '","start_date":"',
            self.day.isoformat(),
            '","end_date":"',
            (self.day + _ONE_DAY).isoformat(),
            '","granularity":"DAILY","product":',
            _s(self.product),
            ',"line_type":"',
            self.line_type,
            '"',
        ]
        if self.network_access_type is not None:
            parts += (',"network_access_type":"', self.network_access_type, '"')
        parts += (
            ',"price":',
            _n(self.price),
            ',"unit":',
            _s(self.unit),
            ',"quantity":',
            _n(self.quantity),
            ',"original_amount":',
            repr(float(self.original_amount)),
            ',"discount_amount":',
            repr(float(self.discount_amount)),
            ',"amount":',
            repr(float(self.amount)),
        )
        if self.description is not None:
            parts += (',"description":', json.dumps(self.description))
        if self.tier_dimensions is not None:
            parts += (',"tier_dimensions":', json.dumps(dict(self.tier_dimensions)))
        if self.resource_mode == "object":
            env = f'{{"id":"{self.env_id}"}}' if self.env_id else "null"
            parts += (
                ',"resource":{"id":"',
                str(self.resource_id),
                '","display_name":',
                _s(self.resource_name),
                ',"environment":',
                env,
                "}",
            )
        elif self.resource_mode == "null":
            parts.append(',"resource":null')
        parts.append("}")
        return "".join(parts)


_ONE_DAY = timedelta(days=1)


@lru_cache(maxsize=65536)
def _s(x: str | None) -> str:
    return "null" if x is None else json.dumps(x)


@lru_cache(maxsize=256)
def _price(text: str) -> Decimal:
    return Decimal(text)


def _n(x: Decimal | None) -> str:
    return "null" if x is None else repr(float(x))


def _num(x: Decimal | None) -> float | None:
    return None if x is None else float(x)


class _Day:
    """Collects the lines of one date."""

    def __init__(self, org: Organization, d: date) -> None:
        self.org = org
        self.d = d
        self.rate = Decimal(org.inventory.discount_rate)
        self.lines: list[Line] = []

    def add(
        self,
        line_type: str,
        product: str | None,
        unit: str,
        price: str,
        quantity: Decimal,
        *,
        basis: tuple[str, str],
        resource: tuple[str, str, str | None] | None = None,
        nat: str | None = None,
        tier: dict[str, str] | None = None,
        tier_index: int = 0,
        resource_mode: str = "object",
    ) -> None:
        p = _price(price)
        original = (p * quantity).quantize(_Q6, ROUND_HALF_EVEN)
        discount = (original * self.rate).quantize(_Q6, ROUND_HALF_EVEN)
        rid, rname, env = resource if resource is not None else (None, None, None)
        self.lines.append(
            Line(
                id=_line_id(self.org.org_id, self.d, rid or "org", line_type, tier_index),
                day=self.d,
                product=product,
                line_type=line_type,
                price=p,
                unit=unit,
                quantity=quantity,
                original_amount=original,
                discount_amount=discount,
                amount=original - discount,
                basis=basis,
                network_access_type=nat,
                tier_dimensions=tuple(sorted(tier.items())) if tier else None,
                resource_id=rid,
                resource_name=rname,
                env_id=env,
                resource_mode=resource_mode if resource is not None else "omit",
            )
        )


def _line_id(org_id: str, d: date, resource: str, line_type: str, tier: int) -> str:
    text = f"{org_id}|{d}|{resource}|{line_type}|{tier}"
    return "cost-" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _q(r: random.Random, lo: int, hi: int, places: int) -> Decimal:
    """A random decimal in ``[lo, hi] / 10**places`` with exactly *places* decimals."""
    return Decimal(r.randint(lo, hi)).scaleb(-places)


def settled_lines(org: Organization, d: date) -> list[Line]:
    """Every final cost row of date *d*, in a stable order."""
    day = _Day(org, d)
    inv = org.inventory
    r_kafka = rng("bill-kafka", org.org_id, d.isoformat())
    for c in inv.clusters:
        if c.life.alive_on(d):
            _kafka(day, org, c.id, r_kafka)
    r_connect = rng("bill-connect", org.org_id, d.isoformat())
    for cn in inv.connectors:
        if cn.life.alive_on(d):
            _connector(day, cn.id, r_connect)
    for k in inv.ksql:
        if k.life.alive_on(d):
            res = (k.id, k.display_name, k.env_id)
            day.add(
                "KSQL_NUM_CSUS",
                "KSQL",
                "CSU-hour",
                "0.23",
                Decimal(k.csu * 24),
                basis=("ksql", k.id),
                resource=res,
            )
    for pool in inv.flink_pools:
        usage = org.flink_usage(pool.id, d)
        if pool.life.alive_on(d) and usage:
            minutes = sum(m for _, m in usage.values())
            day.add(
                "FLINK_NUM_CFUS",
                "FLINK",
                "CFU-hour",
                "0.21",
                Decimal(minutes) / 60,
                basis=("flink", pool.id),
                resource=(pool.id, pool.display_name, pool.env_id),
            )
    for sr in inv.schema_registries:
        if sr.life.alive_on(d):
            _schema_registry(day, sr.id)
    _org_wide(day)
    return day.lines


def _kafka(day: _Day, org: Organization, cluster_id: str, r: random.Random) -> None:
    c = org.clusters[cluster_id]
    res = (c.id, c.display_name, c.env_id)
    nat = c.network_access_type
    shared = ("kafka_shared", c.id)

    def add(lt: str, unit: str, price: str, q: Decimal, product: str = "KAFKA") -> None:
        day.add(lt, product, unit, price, q, basis=shared, resource=res, nat=nat)

    if c.kind == "Dedicated":
        add("KAFKA_NUM_CKUS", "CKU-hour", "2.25" if c.cku > 1 else "1.5", Decimal(c.cku * 24))
    else:
        add("KAFKA_BASE", "Hour", "0" if c.kind == "Basic" else "0.75", Decimal(24))
        add("KAFKA_PARTITION", "Partition-hour", "0.0015", Decimal(c.partitions * 24))
    usage = org.kafka_usage(c.id, day.d)
    for lt, idx in (("KAFKA_NETWORK_WRITE", 0), ("KAFKA_NETWORK_READ", 1)):
        total = sum(v[idx] for v in usage.values())
        if total == 0:
            continue
        gb = Decimal(total // MB) / 1000  # usage bytes are whole megabytes
        basis = ("request_bytes" if idx == 0 else "response_bytes", c.id)
        price = str(_NET_PRICE.get(nat, Decimal("0.04")))
        if "tiered_network" in c.features:
            tiers = (
                [(gb, "0.05")] if gb <= _TIER_GB else [(_TIER_GB, "0.05"), (gb - _TIER_GB, "0.03")]
            )
            for i, (q, p) in enumerate(tiers):
                day.add(
                    lt,
                    "KAFKA",
                    "GB",
                    p,
                    q,
                    basis=basis,
                    resource=res,
                    nat=nat,
                    tier={"tier": str(i + 1)},
                    tier_index=i,
                )
        else:
            day.add(lt, "KAFKA", "GB", price, gb, basis=basis, resource=res, nat=nat)
    add("KAFKA_STORAGE", "GB-hour", "0.0001", _q(r, 100, 5_000_000, 2))
    if "rest_produce" in c.features and r.random() < 0.6:
        add("KAFKA_REST_PRODUCE", "GB", "0.1", _q(r, 1, 90_000, 3))
    if "streams" in c.features and r.random() < 0.7:
        add("KAFKA_STREAMS", "Hour", "0.12", Decimal(24))
    if "cluster_link" in c.features:
        add(
            "CLUSTER_LINKING_PER_LINK",
            "Link-hour",
            "0.1",
            Decimal(24 * r.randint(1, 3)),
            "CLUSTER_LINK",
        )
        add("CLUSTER_LINKING_READ", "GB", "0.04", _q(r, 1, 500_000, 3), "CLUSTER_LINK")
        add("CLUSTER_LINKING_WRITE", "GB", "0.04", _q(r, 1, 500_000, 3), "CLUSTER_LINK")
    if "tableflow" in c.features:
        add("TABLEFLOW_DATA_PROCESSED", "GB", "0.04", _q(r, 1, 200_000, 3), "TABLEFLOW")
        add(
            "TABLEFLOW_NUM_TOPICS",
            "Topic-hour",
            "0.0096",
            Decimal(24 * r.randint(1, 20)),
            "TABLEFLOW",
        )
        add("TABLEFLOW_STORAGE", "GB-hour", "0.0001", _q(r, 100, 900_000, 2), "TABLEFLOW")
    if "usm" in c.features:
        add("USM_CONNECTED_NODE", "Node-hour", "0.01", Decimal(24 * r.randint(1, 6)), "USM")


def _connector(day: _Day, connector_id: str, r: random.Random) -> None:
    org = day.org
    cn = org.connectors[connector_id]
    cluster = org.clusters[cn.cluster_id]
    res = (cn.id, cn.name, cn.env_id)
    basis = ("owner", cn.id)
    tier = {
        "provider": cluster.cloud.lower(),
        "region": cluster.region,
        "connector_type": cn.connector_class,
    }
    if cn.custom:
        day.add(
            "CUSTOM_CONNECT_NUM_TASKS",
            "CUSTOM_CONNECT",
            "Task-hour",
            "0.1",
            Decimal(cn.tasks * 24),
            basis=basis,
            resource=res,
        )
        day.add(
            "CUSTOM_CONNECT_THROUGHPUT",
            "CUSTOM_CONNECT",
            "GB",
            "0.025",
            _q(r, 1, 400_000, 3),
            basis=basis,
            resource=res,
        )
        return
    day.add(
        "CONNECT_NUM_TASKS",
        "CONNECT",
        "Task-hour",
        "0.034",
        Decimal(cn.tasks * 24),
        basis=basis,
        resource=res,
    )
    if r.random() < 0.5:
        day.add(
            "CONNECT_THROUGHPUT",
            "CONNECT",
            "GB",
            "0.025",
            _q(r, 1, 400_000, 3),
            basis=basis,
            resource=res,
            tier=tier,
        )
    if "capacity" in cn.features:
        day.add(
            "CONNECT_CAPACITY",
            "CONNECT",
            "Connector-hour",
            "0.139",
            Decimal(24),
            basis=basis,
            resource=res,
        )
    if "records" in cn.features:
        day.add(
            "CONNECT_NUM_RECORDS",
            "CONNECT",
            "Million records",
            "0.5",
            _q(r, 1, 90_000, 2),
            basis=basis,
            resource=res,
        )


def _schema_registry(day: _Day, sr_id: str) -> None:
    org = day.org
    sr = org.schema_registries[sr_id]
    r = rng("bill-sr", org.org_id, sr.id, day.d.isoformat())
    res = (sr.id, sr.display_name, sr.env_id)
    basis = ("sr_keys", sr.id)
    product = "STREAM_GOVERNANCE"
    day.add(
        "SCHEMA_REGISTRY",
        product,
        "Schema-hour",
        "0.0017",
        Decimal(24 * r.randint(1, 400)),
        basis=basis,
        resource=res,
    )
    if sr.package == "ADVANCED":
        day.add("GOVERNANCE_BASE", product, "Hour", "1", Decimal(24), basis=basis, resource=res)
    if r.random() < 0.5 or sr is org.inventory.schema_registries[0]:
        day.add(
            "NUM_RULES",
            product,
            "Rule-hour",
            "0.001",
            Decimal(24 * r.randint(1, 30)),
            basis=basis,
            resource=res,
        )


def _org_wide(day: _Day) -> None:
    org = day.org
    r = rng("bill-org", org.org_id, day.d.isoformat())
    none = ("none", "")
    day.add("SUPPORT", org.inventory.support_product, "Day", "33", Decimal(1), basis=none)
    if r.random() < 0.8:
        day.add(
            "AUDIT_LOG_READ",
            "AUDIT_LOG",
            "GB",
            "0.15",
            _q(r, 1, 20_000, 3),
            basis=none,
            resource=("", "", None),
            resource_mode="null",
        )
    if day.d.toordinal() % 7 == 3 or r.random() < 0.1:
        credit = -_q(r, 100, 50_000, 2)
        day.lines.append(
            Line(
                id=_line_id(org.org_id, day.d, "org", "PROMO_CREDIT", 0),
                day=day.d,
                product=r.choice((None, "KAFKA")),
                line_type="PROMO_CREDIT",
                price=None,
                unit=None,
                quantity=None,
                original_amount=credit,
                discount_amount=Decimal(0),
                amount=credit,
                basis=none,
                description=r.choice(("PROMO-KAFKA101", "CONFLUENT-CREDIT-2026")),
                resource_mode=r.choice(("omit", "null")),
            )
        )


def as_of(lines: list[Line], d: date, now: datetime, discount_rate: Decimal) -> list[Line]:
    """The rows of *d* as visible at *now* (late data), from its final rows."""
    hours = int((now - day_start(d + timedelta(days=1))).total_seconds() // 3600)
    if hours < 0:
        return []
    if hours >= SETTLE_HOURS:
        return lines
    visible = 0.3 + 0.7 * hours / SETTLE_HOURS
    factor = Decimal(SETTLE_HOURS + hours) / (2 * SETTLE_HOURS)
    out: list[Line] = []
    for line in lines:
        if unit_float("late", line.id) >= visible:
            continue
        out.append(_scaled(line, factor, discount_rate))
    return out


def _scaled(line: Line, factor: Decimal, rate: Decimal) -> Line:
    if line.quantity is None or line.price is None:
        credit = (line.original_amount * factor).quantize(Decimal("0.01"), ROUND_DOWN)
        return line._replace(original_amount=credit, amount=credit - line.discount_amount)
    q = (line.quantity * factor).quantize(Decimal(1).scaleb(_exp(line.quantity)), ROUND_DOWN)
    original = (line.price * q).quantize(_Q6, ROUND_HALF_EVEN)
    discount = (original * rate).quantize(_Q6, ROUND_HALF_EVEN)
    return line._replace(
        quantity=q,
        original_amount=original,
        discount_amount=discount,
        amount=original - discount,
    )


def _exp(x: Decimal) -> int:
    e = x.as_tuple().exponent
    return e if isinstance(e, int) else 0
