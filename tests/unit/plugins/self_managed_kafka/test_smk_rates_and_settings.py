"""The self_managed_kafka rate card's precedence and its settings' errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from chargeback.plugins.self_managed_kafka.config import (
    ClusterSettings,
    RateEntry,
    SelfManagedKafkaSettings,
)
from chargeback.plugins.self_managed_kafka.rates import RateCard

EAST = ClusterSettings(id="east-1", region="us-east")
WEST = ClusterSettings(id="west-1", region="us-west")


def entry(valid_from: str, rates: dict[str, str], **scope: str) -> RateEntry:
    return RateEntry.model_validate({"valid_from": valid_from, "rates": rates, **scope})


CARD = RateCard([
    entry("2026-01-01", {"ingress_per_gib": "0.01", "egress_per_gib": "0.02"}),
    entry("2026-03-01", {"ingress_per_gib": "0.03"}),
    entry("2026-01-01", {"ingress_per_gib": "0.10"}, region="us-west"),
    entry("2026-02-01", {"ingress_per_gib": "0.50"}, cluster="west-1"),
])  # fmt: skip


@pytest.mark.parametrize(
    ("cluster", "day", "rate", "expected"),
    [
        (EAST, "2026-02-28", "ingress_per_gib", "0.01"),
        (EAST, "2026-03-01", "ingress_per_gib", "0.03"),  # the change applies from its day
        (WEST, "2026-01-31", "ingress_per_gib", "0.10"),  # the region's override
        (WEST, "2026-02-01", "ingress_per_gib", "0.50"),  # the cluster's, from its day
        (WEST, "2026-03-01", "ingress_per_gib", "0.50"),  # a later global change does not win
        (WEST, "2026-03-01", "egress_per_gib", "0.02"),  # overrides name only what they change
        (EAST, "2025-12-31", "ingress_per_gib", None),  # before every entry
        (EAST, "2026-03-01", "compute_per_broker_hour", None),  # never set
    ],
)
def test_most_specific_scope_then_latest_valid_from(
    cluster: ClusterSettings, day: str, rate: Any, expected: str | None
) -> None:
    """Cluster before region before everyone; within a scope the latest entry in force."""
    found = CARD.rate(rate, cluster, dt.date.fromisoformat(day))
    assert found == (None if expected is None else Decimal(expected))


BASE: dict[str, Any] = {
    "prometheus": {"url": "http://prom:9090"},
    "clusters": [{"id": "east-1"}],
    "rate_card": [{"valid_from": "2026-01-01", "rates": {"ingress_per_gib": "0.01"}}],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"clusters": []}, "clusters"),
        ({"clusters": [{"id": "a"}, {"id": "a"}]}, "cluster ids must be unique"),
        ({"rate_card": []}, "rate_card"),
        (
            {
                "rate_card": [
                    {"valid_from": "2026-01-01", "cluster": "a", "region": "r", "rates": {}}
                ]
            },
            "a cluster or a region, not both",
        ),
        ({"rate_card": [{"valid_from": "soon", "rates": {}}]}, "valid_from"),
        ({"compute_usage_ratio": "1.5"}, "compute_usage_ratio"),
        ({"rate_cards": []}, "rate_cards"),
    ],
)
def test_bad_settings_name_the_field(change: dict[str, Any], message: str) -> None:
    """Invalid plugin_settings fail validation with a message naming what is wrong."""
    with pytest.raises(ValidationError, match=message):
        SelfManagedKafkaSettings.model_validate(BASE | change)


def test_the_password_is_never_shown() -> None:
    """The Prometheus password stays out of the settings' repr."""
    settings = SelfManagedKafkaSettings.model_validate(
        BASE | {"prometheus": {"url": "http://p", "username": "u", "password": "hunter2"}}
    )
    assert "hunter2" not in repr(settings)
