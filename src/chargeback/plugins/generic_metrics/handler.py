"""The handler of the cost types: resources, identities per day and the rule table.

Identities are the static list (every day) and the label values of the discovery
selectors and (with ``from_usage``) of the usage selectors, on the days they have
samples; ONE request lists them all for ``lookback_days``. A line is resolved to the
identities active on its day: an ``even`` rule splits over them, a ``usage`` rule
shares its non-usage part with them. Usage by a label value that is not an identity
goes to UNALLOCATED (``unknown_principal``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from chargeback.core.models import (
    BillingLineItem,
    Identity,
    IdentityResolution,
    IdentitySet,
    MetricQuery,
    Resource,
)
from chargeback.core.plugin.protocols import ResolveContext
from chargeback.core.rules import RuleAllocator, RuleSpec, RuleTable
from chargeback.core.sources.day_range import DayRangeQuery
from chargeback.plugins.generic_metrics.config import GenericMetricsSettings
from chargeback.plugins.generic_metrics.promql import presence

__all__ = ["Discovered", "MetricsHandler"]

DISCOVERED = "discovered"
STATIC = "static"
SERVICE = "generic"


@dataclass(slots=True)
class Discovered:
    """The label values seen per day (the run's shared context)."""

    days: dict[dt.date, set[str]] = field(default_factory=dict)

    def everyone(self) -> set[str]:
        """Every identity seen on any day."""
        return set().union(*self.days.values()) if self.days else set()


def _rules(settings: GenericMetricsSettings) -> RuleTable:
    specs: dict[str, RuleSpec] = {}
    for cost in settings.cost_types:
        rule = cost.allocation.rule
        name = f"{cost.name.lower()}_{rule}"
        if rule == "usage":
            ratio = Fraction(cost.allocation.usage_ratio)
            specs[cost.name] = RuleSpec(kind="usage", name=name, ratio=ratio, metrics=(cost.name,))
        else:
            specs[cost.name] = RuleSpec(kind=rule, name=name)
    return RuleTable(specs, unknown_to_unallocated=True)


class MetricsHandler:
    """A :class:`~chargeback.core.plugin.protocols.ServiceHandler` for every cost type."""

    def __init__(self, settings: GenericMetricsSettings, query: DayRangeQuery) -> None:
        self._settings = settings
        self._query = query
        self._rules = _rules(settings)
        self._discovered = Discovered()
        self._static = frozenset(s.id for s in settings.identities.static)
        self._queries = {
            c.name: MetricQuery(c.name, c.allocation.query, c.resource_id, c.allocation.label)
            for c in settings.cost_types
            if c.allocation.query is not None
        }

    @property
    def service_type(self) -> str:
        """``generic``."""
        return SERVICE

    @property
    def handles_product_types(self) -> Sequence[str]:
        """Every cost type's name."""
        return tuple(c.name for c in self._settings.cost_types)

    def listing(self) -> str | None:
        """The PromQL listing identities per day (``None``: nothing to list)."""
        ids = self._settings.identities
        parts = [presence(d.query, d.label) for d in ids.discovery]
        if ids.from_usage:
            parts.extend(
                presence(c.allocation.query, c.allocation.label)
                for c in self._settings.cost_types
                if c.allocation.query is not None
            )
        return " or ".join(dict.fromkeys(parts)) or None

    async def discover(self, today: dt.date) -> Discovered:
        """List the identities per day over ``identities.lookback_days`` (one request)."""
        found = Discovered()
        promql = self.listing()
        if promql is not None:
            start = today - dt.timedelta(days=self._settings.identities.lookback_days)
            for series in await self._query.days(promql, start, today + dt.timedelta(days=1)):
                who = next((v for v in series.labels.values() if v), None)
                if who is None:
                    continue
                for day in series.values:
                    found.days.setdefault(day, set()).add(who)
        self._discovered = found
        return found

    async def gather_resources(self, tenant_id: str, shared: Any) -> Sequence[Resource]:
        """One resource per distinct resource id of the cost types."""
        ids = dict.fromkeys(c.resource_id for c in self._settings.cost_types)
        return [Resource(r, "generic_service") for r in ids]

    async def gather_identities(self, tenant_id: str, shared: Any) -> Sequence[Identity]:
        """The static identities, then every identity discovered on any day."""
        out = [Identity(s.id, STATIC, display_name=s.display_name)
               for s in self._settings.identities.static]  # fmt: skip
        seen = sorted(self._discovered.everyone() - self._static)
        out.extend(Identity(i, DISCOVERED) for i in seen)
        return out

    def get_metrics_for_product_type(self, product_type: str) -> Sequence[MetricQuery]:
        """The cost type's usage query, if its rule is ``usage``."""
        query = self._queries.get(product_type)
        return [query] if query is not None else []

    def resolve_identities(
        self, line: BillingLineItem, context: ResolveContext | None = None
    ) -> IdentityResolution:
        """The static identities and those seen on the line's day."""
        known: Mapping[str, Identity] = context["cached_identities"] if context else {}
        ids = self._static | self._discovered.days.get(line.date, set())
        found = IdentitySet(known[i] for i in sorted(ids) if i in known)
        reason = None if found else f"no identities seen on {line.date}"
        return IdentityResolution(found, reason=reason)

    def get_allocator(self, product_type: str) -> RuleAllocator:
        """The cost type's rule."""
        return self._rules.allocator(product_type)
