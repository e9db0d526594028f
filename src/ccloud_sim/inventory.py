"""Inventory records of the generated organization.

Internal records are frozen dataclasses; the HTTP layer renders them into the JSON
shapes of ``reference/ccloud-api.md``. Every record has a lifetime
(``created_at``, ``deleted_at``): a record is *listed* while the clock is inside it
and *billed* for every UTC date it overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "ApiKey",
    "Connector",
    "Environment",
    "FlinkPool",
    "FlinkStatement",
    "IdentityPool",
    "IdentityProvider",
    "KafkaCluster",
    "KsqlCluster",
    "Lifetime",
    "SchemaRegistry",
    "ServiceAccount",
    "UsageSource",
    "User",
]


@dataclass(frozen=True, slots=True)
class Lifetime:
    """When an object existed: ``[created_at, deleted_at)``."""

    created_at: datetime
    deleted_at: datetime | None = None
    first_day: date = field(init=False, repr=False, compare=False)
    last_day: date = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first_day", self.created_at.date())
        last = date.max if self.deleted_at is None else self.deleted_at.date()
        object.__setattr__(self, "last_day", last)

    def listed_at(self, now: datetime) -> bool:
        """True if a list endpoint shows the object at *now*."""
        return self.created_at <= now and (self.deleted_at is None or now < self.deleted_at)

    def alive_on(self, d: date) -> bool:
        """True if the object existed at any moment of UTC date *d*."""
        return self.first_day <= d <= self.last_day


@dataclass(frozen=True, slots=True)
class Environment:
    """An environment (``env-``)."""

    id: str
    display_name: str
    governance_package: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class KafkaCluster:
    """A Kafka cluster (``lkc-``) and the billing features it has."""

    id: str
    env_id: str
    display_name: str
    kind: str
    cku: int
    cloud: str
    region: str
    availability: str
    network_access_type: str
    partitions: int
    life: Lifetime
    features: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A service account (``sa-``)."""

    id: str
    display_name: str
    description: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class User:
    """A user (``u-``)."""

    id: str
    email: str
    full_name: str
    auth_type: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key; ``resource_kind`` is Cluster, Cloud, SchemaRegistry, Region or ksqlDB."""

    id: str
    display_name: str
    description: str
    owner_id: str
    owner_kind: str
    resource_kind: str
    resource_id: str
    env_id: str | None
    life: Lifetime


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """An OAuth identity provider."""

    id: str
    display_name: str
    description: str
    issuer: str
    jwks_uri: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class IdentityPool:
    """An identity pool of a provider."""

    id: str
    provider_id: str
    display_name: str
    description: str
    identity_claim: str
    filter: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class Connector:
    """A managed or custom connector (``lcc-``) on a Kafka cluster.

    ``auth_mode`` is SERVICE_ACCOUNT or KAFKA_API_KEY; ``principal_id`` is the
    service account or the API key id; ``masked`` hides the key in the config;
    ``topics`` is the topic of its cluster it reads or writes (its config's ``topics``).
    """

    id: str
    name: str
    env_id: str
    cluster_id: str
    connector_class: str
    type: str
    custom: bool
    auth_mode: str
    principal_id: str
    owner_id: str
    masked: bool
    tasks: int
    features: frozenset[str]
    life: Lifetime
    topics: str = ""


@dataclass(frozen=True, slots=True)
class KsqlCluster:
    """A ksqlDB cluster (``lksqlc-``)."""

    id: str
    env_id: str
    display_name: str
    csu: int
    kafka_cluster_id: str
    credential_identity: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """A Schema Registry cluster (``lsrc-``)."""

    id: str
    env_id: str
    display_name: str
    package: str
    cloud: str
    region: str
    life: Lifetime


@dataclass(frozen=True, slots=True)
class FlinkPool:
    """A Flink compute pool (``lfcp-``)."""

    id: str
    env_id: str
    display_name: str
    cloud: str
    region: str
    max_cfu: int
    life: Lifetime


@dataclass(frozen=True, slots=True)
class FlinkStatement:
    """A Flink SQL statement; consumes CFU while running (until ``ended_at``)."""

    name: str
    uid: str
    env_id: str
    pool_id: str
    principal: str
    statement: str
    phase: str
    ended_at: datetime | None
    life: Lifetime

    def runs_on(self, d: date) -> bool:
        """True if the statement consumed CFU on UTC date *d*."""
        if not self.life.alive_on(d):
            return False
        return self.ended_at is None or self.ended_at.date() >= d


@dataclass(frozen=True, slots=True)
class UsageSource:
    """Something that produces traffic on a cluster, as seen by the Metrics API.

    ``principal_id`` is what ``metric.principal_id`` reports (a service account,
    user, identity pool, API key id, or an id unknown to IAM). ``owner_id`` is the
    identity behind it (``None`` when unknown). Byte means are in whole megabytes.
    """

    principal_id: str
    owner_id: str | None
    key_id: str | None
    write_mb: int
    read_mb: int
    life: Lifetime
