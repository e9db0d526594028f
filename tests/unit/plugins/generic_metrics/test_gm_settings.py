"""The generic_metrics settings: selectors only, rates by valid_from, clear errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from chargeback.plugins.generic_metrics.config import CostType, GenericMetricsSettings
from chargeback.plugins.generic_metrics.cost_input import rate_on
from chargeback.plugins.generic_metrics.handler import MetricsHandler


def cost(**extra: Any) -> dict[str, Any]:
    return {
        "name": "PG_STORAGE",
        "rates": [{"valid_from": "2026-01-01", "rate": "0.1"}],
        "quantity": {"kind": "gauge_average", "query": "pg_database_size_bytes"},
    } | extra


def settings(*costs: dict[str, Any], **extra: Any) -> GenericMetricsSettings:
    return GenericMetricsSettings.model_validate(
        {"prometheus": {"url": "http://prom"}, "cost_types": list(costs) or [cost()]} | extra
    )


@pytest.mark.parametrize(
    "query",
    ['pg_size{db="a"}', "pg_size", '{__name__="pg_size", db=~"a|b"}', 'x{a="}[5m]{"}'],
)
def test_series_selectors_are_accepted(query: str) -> None:
    """A metric with matchers (braces or brackets inside a quoted value included) is a selector."""
    parsed = settings(cost(quantity={"kind": "increase", "query": query}))
    assert parsed.cost_types[0].quantity.query == query


@pytest.mark.parametrize(
    "query",
    ["rate(pg_size[5m])", 'pg_size{db="a"}[1d]', "pg_size + pg_other", "sum(pg_size)", ""],
)
def test_anything_but_a_selector_is_refused_with_what_to_write(query: str) -> None:
    """Functions, ranges and operators are refused: the plugin takes the day's value itself."""
    with pytest.raises(ValidationError, match="is not a series selector"):
        settings(cost(quantity={"kind": "increase", "query": query}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantity": {"kind": "count_hours"}}, "takes a count and no query"),
        ({"quantity": {"kind": "increase", "count": 2}}, "takes a query"),
        ({"allocation": {"rule": "usage"}}, "usage allocation takes a query"),
        ({"allocation": {"rule": "even", "query": "x"}}, "takes no query"),
        ({"allocation": {"rule": "usage", "query": "x", "label": "a-b"}}, "not a Prometheus label"),
        ({"allocation": {"rule": "usage", "query": "x", "usage_ratio": "1.5"}}, "less than or"),
        ({"name": "pg storage"}, "should match pattern"),
        ({"rates": []}, "at least 1 item"),
        ({"rates": [{"valid_from": "2026-01-01", "rate": "-1"}]}, "greater than or equal"),
        (
            {"rates": [{"valid_from": "2026-01-01", "rate": "1"}] * 2},
            "two rates share a valid_from day",
        ),
    ],
)
def test_bad_cost_types_are_refused(change: dict[str, Any], message: str) -> None:
    """Each inconsistent cost type gets an error saying what is wrong."""
    with pytest.raises(ValidationError, match=message):
        settings(cost(**change))


def test_cost_type_names_are_unique() -> None:
    """Two cost types of one name would share their lines' ids."""
    with pytest.raises(ValidationError, match="names must be unique"):
        settings(cost(), cost())


def test_the_latest_rate_valid_on_a_day_applies() -> None:
    """Rates apply from their day on, in any order; before the first there is none."""
    parsed = CostType.model_validate(
        cost(rates=[{"valid_from": "2026-03-01", "rate": "3"},
                    {"valid_from": "2026-01-01", "rate": "1"},
                    {"valid_from": "2026-02-01", "rate": "2"}])
    )  # fmt: skip
    days = ["2025-12-31", "2026-01-01", "2026-01-31", "2026-02-01", "2026-03-01", "2027-01-01"]
    got = [rate_on(parsed, dt.date.fromisoformat(d)) for d in days]
    assert got == [None, Decimal(1), Decimal(1), Decimal(2), Decimal(3), Decimal(3)]


def test_the_identity_listing_is_one_expression_of_every_source() -> None:
    """Discovery and usage selectors are listed together, each once; nothing: no listing."""
    usage = {"rule": "usage", "query": 'pg_size{db!=""}', "label": "team"}
    parsed = settings(
        cost(allocation=usage),
        cost(name="PG_OTHER", allocation=usage),
        identities={"discovery": [{"query": "pg_team_info", "label": "owner"}]},
    )
    listing = MetricsHandler(parsed, None).listing()  # type: ignore[arg-type]
    assert listing is not None
    assert listing.count(" or ") == 1
    assert "count by (owner) (last_over_time(pg_team_info[86399999ms]))" in listing
    assert 'count by (team) (last_over_time(pg_size{db!=""}[86399999ms]))' in listing
    quiet = settings(identities={"from_usage": False})
    assert MetricsHandler(quiet, None).listing() is None  # type: ignore[arg-type]
