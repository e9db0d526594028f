"""The cost types of a self-managed cluster: product type, rate, unit and quantity."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, localcontext

from chargeback.plugins.self_managed_kafka.config import MetricNames
from chargeback.plugins.self_managed_kafka.promql import Kind
from chargeback.plugins.self_managed_kafka.rates import RateName

__all__ = ["CATEGORY", "COSTS", "GIB", "CostSpec"]

CATEGORY = "KAFKA"
GIB = 2**30
HOURS = 24
_EXACT = Context(prec=80)
"""Enough digits that dividing by 2**30 (30 more decimals) never rounds."""


@dataclass(frozen=True, slots=True)
class CostSpec:
    """One line per cluster and day: ``rate x day value x multiplier / divisor``.

    Attributes:
        product_type: the billing line's product type.
        rate: the rate card's field.
        unit: the quantity's unit.
        metric: the :class:`MetricNames` field of the series.
        kind: how the day's value is computed (see :mod:`.promql`).
        multiplier: hours in a day for hourly rates, else 1.
        divisor: bytes per GiB for byte quantities, else 1.
    """

    product_type: str
    rate: RateName
    unit: str
    metric: str
    kind: Kind
    multiplier: int
    divisor: int

    def quantity(self, value: Decimal) -> Decimal:
        """The billed quantity of a day's value (exact: the divisor is a power of two)."""
        with localcontext(_EXACT):
            return value * self.multiplier / self.divisor

    @staticmethod
    def price(quantity: Decimal, rate: Decimal) -> Decimal:
        """``quantity x rate`` without rounding (rounded once, to the minor unit, later)."""
        with localcontext(_EXACT):
            return quantity * rate

    def series(self, names: MetricNames) -> str:
        """The configured series name of this cost's metric."""
        value: str = getattr(names, self.metric)
        return value


COSTS = (
    CostSpec("KAFKA_COMPUTE", "compute_per_broker_hour", "broker-hour", "broker_count",
             "gauge_max", HOURS, 1),
    CostSpec("KAFKA_STORAGE", "storage_per_gib_hour", "GiB-hour", "log_size",
             "gauge_sum", HOURS, GIB),
    CostSpec("KAFKA_PARTITION", "partition_per_hour", "partition-hour", "partition_count",
             "gauge_max", HOURS, 1),
    CostSpec("KAFKA_NETWORK_INGRESS", "ingress_per_gib", "GiB", "bytes_in",
             "counter_delta", 1, GIB),
    CostSpec("KAFKA_NETWORK_EGRESS", "egress_per_gib", "GiB", "bytes_out",
             "counter_delta", 1, GIB),
)  # fmt: skip
"""Every cost type, in line order."""
