"""Settings of the self-managed Kafka plugin (``plugin_settings``), validated with pydantic."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chargeback.core.sources import HttpSettings
from chargeback.core.sources.day_range import DayRangeServer as PrometheusServer

__all__ = [
    "ClusterSettings",
    "IdentitySettings",
    "MetricNames",
    "PrometheusServer",
    "RateEntry",
    "Rates",
    "SelfManagedKafkaSettings",
    "StaticIdentity",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class MetricNames(BaseModel):
    """Series and label names (defaults: the JMX exporter's usual Kafka names)."""

    model_config = _FROZEN

    cluster_label: str = "cluster"
    principal_label: str = "principal"
    bytes_in: str = "kafka_server_brokertopicmetrics_bytesin_total"
    """Counter of bytes produced, per broker, with the principal label where exposed."""
    bytes_out: str = "kafka_server_brokertopicmetrics_bytesout_total"
    """Counter of bytes fetched, per broker, with the principal label where exposed."""
    log_size: str = "kafka_log_log_size"
    """Gauge of log bytes per partition."""
    broker_count: str = "kafka_controller_kafkacontroller_activebrokercount"
    """Gauge of live brokers, reported by the active controller."""
    partition_count: str = "kafka_controller_kafkacontroller_globalpartitioncount"
    """Gauge of partitions in the cluster, reported by the active controller."""


class Rates(BaseModel):
    """Prices in the billing currency; any may be omitted (then a less specific entry's)."""

    model_config = _FROZEN

    compute_per_broker_hour: Decimal | None = None
    storage_per_gib_hour: Decimal | None = None
    partition_per_hour: Decimal | None = None
    ingress_per_gib: Decimal | None = None
    egress_per_gib: Decimal | None = None


class RateEntry(BaseModel):
    """Rates valid from a UTC day on, for every cluster, one region or one cluster."""

    model_config = _FROZEN

    valid_from: dt.date
    cluster: str | None = None
    region: str | None = None
    rates: Rates

    @model_validator(mode="after")
    def _one_scope(self) -> RateEntry:
        if self.cluster is not None and self.region is not None:
            raise ValueError("a rate entry applies to a cluster or a region, not both")
        return self


class ClusterSettings(BaseModel):
    """One cluster: its value of the cluster label, and its region for rate overrides."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    region: str | None = None
    display_name: str | None = None


class StaticIdentity(BaseModel):
    """An identity from settings; the principals listed are charged to it."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    display_name: str | None = None
    principals: tuple[str, ...] = ()


class IdentitySettings(BaseModel):
    """Where identities come from: the principal label, a static list, or both."""

    model_config = _FROZEN

    from_principal_label: bool = True
    """Every principal in the usage is an identity of its own (unless a static one claims it)."""
    static: tuple[StaticIdentity, ...] = ()
    lookback_days: int = Field(default=400, ge=1)
    """How far back the principal listing looks for principals."""


class SelfManagedKafkaSettings(BaseModel):
    """``plugin_settings`` of a ``self_managed_kafka`` tenant."""

    model_config = _FROZEN

    prometheus: PrometheusServer
    clusters: tuple[ClusterSettings, ...] = Field(min_length=1)
    rate_card: tuple[RateEntry, ...] = Field(min_length=1)
    metrics: MetricNames = MetricNames()
    identities: IdentitySettings = IdentitySettings()
    compute_usage_ratio: Decimal = Field(default=Decimal("0.7"), ge=0, le=1)
    """Part of compute split by bytes in + out; the rest evenly over active principals."""
    storage_usage_ratio: Decimal = Field(default=Decimal(1), ge=0, le=1)
    """Part of storage (and partitions) split by bytes in; the rest evenly."""
    http: HttpSettings = HttpSettings()

    @model_validator(mode="after")
    def _check(self) -> SelfManagedKafkaSettings:
        ids = [c.id for c in self.clusters]
        if len(set(ids)) != len(ids):
            raise ValueError("cluster ids must be unique")
        return self
