"""Settings of the generic metrics plugin (``plugin_settings``), validated with pydantic.

A tenant is one shared platform scraped by one Prometheus. Each cost type has a rate
(with ``valid_from`` days), a quantity from a series selector (or a fixed count) and
an allocation by a usage selector grouped by a label (or even over the identities).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chargeback.core.sources import HttpSettings
from chargeback.core.sources.day_range import DayRangeServer as PrometheusServer

__all__ = [
    "Allocation",
    "CostType",
    "Discovery",
    "GenericMetricsSettings",
    "IdentitySettings",
    "PrometheusServer",
    "Quantity",
    "Rate",
    "StaticIdentity",
    "check_selector",
]

_FROZEN = ConfigDict(extra="forbid", frozen=True)
_MATCHERS = r'\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}'
_SELECTOR = re.compile(rf"\s*(?:[a-zA-Z_:][a-zA-Z0-9_:]*\s*(?:{_MATCHERS})?|{_MATCHERS})\s*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_selector(value: str) -> str:
    """Accept a series selector (``name{matchers}``); the plugin adds the day's function.

    Raises:
        ValueError: anything else (a function, an operator, a range), with what to write.
    """
    if not _SELECTOR.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a series selector: write the metric and its label matchers, "
            'e.g. pg_database_size_bytes{cluster="main"}; the plugin takes each UTC day\'s '
            "average or increase itself"
        )
    return value.strip()


def _check_label(value: str) -> str:
    if not _LABEL.fullmatch(value):
        raise ValueError(f"{value!r} is not a Prometheus label name")
    return value


class Rate(BaseModel):
    """The price of one unit of a cost type from a UTC day on."""

    model_config = _FROZEN

    valid_from: dt.date
    rate: Decimal = Field(ge=0)


class Quantity(BaseModel):
    """How a day's quantity of a cost type is measured.

    - ``count_hours``: a fixed ``count`` x 24 hours (e.g. reserved instances);
    - ``gauge_average``: the day's average of each series of ``query``, summed;
    - ``increase``: the day's increase of each counter series of ``query`` (its last
      sample minus the day before's last), summed.

    The value is then multiplied by ``multiplier`` (24 for a rate per unit-hour of a
    gauge) and divided by ``divisor`` (1073741824 for bytes priced per GiB).
    """

    model_config = _FROZEN

    kind: Literal["count_hours", "gauge_average", "increase"]
    query: str | None = None
    count: Decimal | None = Field(default=None, ge=0)
    multiplier: Decimal = Field(default=Decimal(1), gt=0)
    divisor: Decimal = Field(default=Decimal(1), gt=0)

    @field_validator("query")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @model_validator(mode="after")
    def _check(self) -> Quantity:
        if self.kind == "count_hours" and (self.count is None or self.query is not None):
            raise ValueError("a count_hours quantity takes a count and no query")
        if self.kind != "count_hours" and (self.query is None or self.count is not None):
            raise ValueError(f"a {self.kind} quantity takes a query (a series selector), no count")
        return self


class Allocation(BaseModel):
    """How a cost type's lines are split.

    - ``usage``: ``usage_ratio`` by the day's value of ``query`` per ``label`` value
      (``increase`` or ``gauge_average``, values x ``scale`` as integers), the rest
      evenly over the identities active that day;
    - ``even``: evenly over the identities active that day;
    - ``unallocated``: all to UNALLOCATED.
    """

    model_config = _FROZEN

    rule: Literal["usage", "even", "unallocated"] = "even"
    query: str | None = None
    kind: Literal["increase", "gauge_average"] = "increase"
    label: str = "team"
    usage_ratio: Decimal = Field(default=Decimal(1), ge=0, le=1)
    scale: int = Field(default=1, ge=1)
    """Usage values are multiplied by this before they become integer weights (1000
    keeps three decimals of CPU seconds)."""

    _label = field_validator("label")(_check_label)

    @field_validator("query")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return None if value is None else check_selector(value)

    @model_validator(mode="after")
    def _check(self) -> Allocation:
        if self.rule == "usage" and self.query is None:
            raise ValueError("a usage allocation takes a query (a series selector)")
        if self.rule != "usage" and self.query is not None:
            raise ValueError(f"an {self.rule} allocation takes no query (set rule: usage)")
        return self


class CostType(BaseModel):
    """One cost type: one billing line per UTC day."""

    model_config = _FROZEN

    name: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    """The lines' product type, e.g. ``POSTGRES_STORAGE``."""
    resource: str | None = Field(default=None, min_length=1)
    """The lines' resource id (default: the name in lower case)."""
    category: str = "PLATFORM"
    unit: str = "unit"
    rates: tuple[Rate, ...] = Field(min_length=1)
    quantity: Quantity
    allocation: Allocation = Allocation()

    @property
    def resource_id(self) -> str:
        """The resource id of the cost type's lines."""
        return self.resource or self.name.lower()


class StaticIdentity(BaseModel):
    """An identity from settings, active every day."""

    model_config = _FROZEN

    id: str = Field(min_length=1)
    display_name: str | None = None


class Discovery(BaseModel):
    """A series selector whose ``label`` values are identities, on the days they appear."""

    model_config = _FROZEN

    query: str
    label: str = "team"

    _query = field_validator("query")(check_selector)
    _label = field_validator("label")(_check_label)


class IdentitySettings(BaseModel):
    """Where identities come from: discovery selectors, the usage labels, a static list."""

    model_config = _FROZEN

    static: tuple[StaticIdentity, ...] = ()
    discovery: tuple[Discovery, ...] = ()
    from_usage: bool = True
    """The label values of the usage queries are identities, on the days they appear."""
    lookback_days: int = Field(default=400, ge=1)
    """How far back the identity listing looks."""


class GenericMetricsSettings(BaseModel):
    """``plugin_settings`` of a ``generic_metrics`` tenant."""

    model_config = _FROZEN

    prometheus: PrometheusServer
    cost_types: tuple[CostType, ...] = Field(min_length=1)
    identities: IdentitySettings = IdentitySettings()
    http: HttpSettings = HttpSettings()

    @model_validator(mode="after")
    def _check(self) -> GenericMetricsSettings:
        names = [c.name for c in self.cost_types]
        if len(set(names)) != len(names):
            raise ValueError("cost type names must be unique")
        for cost in self.cost_types:
            days = [r.valid_from for r in cost.rates]
            if len(set(days)) != len(days):
                raise ValueError(f"cost type {cost.name}: two rates share a valid_from day")
        return self
