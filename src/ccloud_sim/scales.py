"""Organization size presets.

Each preset fixes how many of every kind of object the generated organization has.
``tiny`` is for unit tests, ``small`` for the demo, ``medium`` matches the
reference benchmark organization (DESIGN §12), ``large`` the issue's big tenant and
``xlarge`` five times that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["SCALES", "Scale", "get_scale"]


@dataclass(frozen=True, slots=True)
class Scale:
    """How many objects of each kind a generated organization holds."""

    name: str
    environments: int
    kafka_clusters: int
    service_accounts: int
    users: int
    api_keys: int
    connectors: int
    ksql_clusters: int
    schema_registries: int
    flink_pools: int
    flink_statements: int
    identity_providers: int
    pools_per_provider: int
    principals_per_cluster: int


_LARGE = Scale(
    name="large",
    environments=20,
    kafka_clusters=200,
    service_accounts=3000,
    users=500,
    api_keys=10000,
    connectors=600,
    ksql_clusters=40,
    schema_registries=25,
    flink_pools=30,
    flink_statements=400,
    identity_providers=3,
    pools_per_provider=4,
    principals_per_cluster=30,
)

SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny",
        environments=2,
        kafka_clusters=3,
        service_accounts=15,
        users=5,
        api_keys=40,
        connectors=5,
        ksql_clusters=1,
        schema_registries=1,
        flink_pools=1,
        flink_statements=3,
        identity_providers=1,
        pools_per_provider=2,
        principals_per_cluster=6,
    ),
    "small": Scale(
        name="small",
        environments=3,
        kafka_clusters=6,
        service_accounts=60,
        users=20,
        api_keys=200,
        connectors=20,
        ksql_clusters=2,
        schema_registries=3,
        flink_pools=2,
        flink_statements=12,
        identity_providers=1,
        pools_per_provider=3,
        principals_per_cluster=12,
    ),
    "medium": Scale(
        name="medium",
        environments=8,
        kafka_clusters=40,
        service_accounts=600,
        users=150,
        api_keys=2000,
        connectors=120,
        ksql_clusters=8,
        schema_registries=8,
        flink_pools=8,
        flink_statements=80,
        identity_providers=2,
        pools_per_provider=3,
        principals_per_cluster=25,
    ),
    "large": _LARGE,
    "xlarge": replace(
        _LARGE,
        name="xlarge",
        environments=100,
        kafka_clusters=1000,
        service_accounts=15000,
        users=2500,
        api_keys=50000,
        connectors=3000,
        ksql_clusters=200,
        schema_registries=125,
        flink_pools=150,
        flink_statements=2000,
        identity_providers=5,
    ),
}


def get_scale(name: str) -> Scale:
    """Return the preset called *name*.

    Raises:
        ValueError: if no preset has that name.
    """
    try:
        return SCALES[name]
    except KeyError:
        known = ", ".join(SCALES)
        raise ValueError(f"unknown scale {name!r}; expected one of: {known}") from None
