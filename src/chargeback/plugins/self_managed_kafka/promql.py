"""The PromQL of the self-managed Kafka plugin, one expression per quantity.

Every expression is evaluated per exact UTC day (see
:mod:`chargeback.core.sources.day_range`) and grouped by the cluster label, so one
request answers every cluster and every day of the run.

- gauges (brokers, partitions, log size): the day's average of the samples;
- counters (bytes in/out): the last sample of the day minus the last sample of the
  previous day (exact bytes between those two scrapes, no extrapolation; a day, or the
  day after, without samples has no value).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from chargeback.core.sources.day_range import DAY_WINDOW, sum_and_smallest
from chargeback.core.sources.prometheus import promql_regex_literal

__all__ = ["Kind", "expression", "quantity"]

Kind = Literal["gauge_sum", "gauge_max", "counter_delta"]


def selector(metric: str, cluster_label: str, cluster_ids: Sequence[str]) -> str:
    """``metric{cluster=~"a|b"}``."""
    ids = "|".join(promql_regex_literal(c) for c in sorted(set(cluster_ids)))
    return f'{metric}{{{cluster_label}=~"{ids}"}}'


def expression(kind: Kind, select: str, group: Sequence[str]) -> str:
    """The day's value of ``select`` aggregated by the ``group`` labels."""
    by = ", ".join(group)
    if kind == "gauge_sum":
        return f"sum by ({by}) (avg_over_time({select}[{DAY_WINDOW}]))"
    if kind == "gauge_max":
        return f"max by ({by}) (avg_over_time({select}[{DAY_WINDOW}]))"
    return f"sum by ({by}) ({_delta(select)})"


def quantity(kind: Kind, select: str, group: Sequence[str]) -> str:
    """A cost's day value per ``group``; a counter's with its smallest series delta apart
    (:func:`~chargeback.core.sources.day_range.sum_and_smallest`), so one broker's reset
    is seen even where the other brokers' bytes hide it in the sum."""
    if kind != "counter_delta":
        return expression(kind, select, group)
    return sum_and_smallest(_delta(select), group)


def _delta(select: str) -> str:
    return (
        f"last_over_time({select}[{DAY_WINDOW}]) - last_over_time({select}[{DAY_WINDOW}] offset 1d)"
    )
