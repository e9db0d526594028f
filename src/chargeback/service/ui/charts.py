"""SVG charts as data: the templates draw rectangles computed here (no JavaScript).

Two shapes cover the UI: horizontal bars stacked by a series (cost by identity, stacked
by product type) and columns per day stacked by a series (cost per day by cost type).
Amounts are integers of minor units; geometry is rounded only for drawing, and every
bar keeps its exact amount for its label and tooltip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["PALETTE", "Bar", "Chart", "Segment", "stacked_bars", "stacked_columns"]

PALETTE = (
    "#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5",
    "#9c6b4e", "#9498a0", "#1f77b4", "#d62728", "#2ca02c", "#bcbd22", "#17becf",
)  # fmt: skip
"""Series colours, in order (the last series past them wraps)."""

UNALLOCATED_COLOUR = "#7f7f7f"


@dataclass(frozen=True, slots=True)
class Segment:
    """One series' part of a bar: where it is drawn and what it is."""

    series: str
    amount: int
    offset: float
    length: float
    colour: str


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar (a key) and its stacked segments."""

    key: str
    label: str
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """Bars and the legend, in a coordinate space of ``scale`` units for the largest bar."""

    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...]
    scale: float


def _colours(series: Sequence[str]) -> dict[str, str]:
    colours = {}
    for i, name in enumerate(series):
        colours[name] = UNALLOCATED_COLOUR if name == "UNALLOCATED" else PALETTE[i % len(PALETTE)]
    return colours


def _stack(
    values: Mapping[str, Mapping[str, int]],
    order: Sequence[str],
    labels: Mapping[str, str],
    series: Sequence[str],
    scale: float,
) -> Chart:
    colours = _colours(series)
    # Negative parts (credits) cannot stack into a positive bar honestly: they are drawn
    # from zero at their size and the total says the net.
    largest = max((sum(max(v, 0) for v in values[k].values()) for k in order), default=0)
    unit = scale / largest if largest > 0 else 0.0
    bars = []
    for key in order:
        offset, segments = 0.0, []
        for name in series:
            amount = values[key].get(name, 0)
            if amount == 0:
                continue
            length = max(amount, 0) * unit
            segments.append(Segment(name, amount, offset, length, colours[name]))
            offset += length
        bars.append(Bar(key, labels.get(key, key), sum(values[key].values()), tuple(segments)))
    return Chart(tuple(bars), tuple((s, colours[s]) for s in series), scale)


def stacked_bars(
    values: Mapping[str, Mapping[str, int]],
    *,
    labels: Mapping[str, str],
    top: int,
    scale: float = 520.0,
) -> Chart:
    """The ``top`` largest keys as bars stacked by series, the rest folded into ``others``.

    Args:
        values: key -> series -> amount.
        labels: display labels of the keys.
        top: how many keys get a bar of their own.
        scale: the largest bar's length.
    """
    totals = {k: sum(v.values()) for k, v in values.items()}
    ranked = sorted(values, key=lambda k: (-totals[k], k))
    chosen = {k: dict(values[k]) for k in ranked[:top]}
    rest = ranked[top:]
    if rest:
        folded: dict[str, int] = {}
        for key in rest:
            for name, amount in values[key].items():
                folded[name] = folded.get(name, 0) + amount
        chosen[f"{len(rest)} others"] = folded
    series_totals: dict[str, int] = {}
    for per_series in values.values():
        for name, amount in per_series.items():
            series_totals[name] = series_totals.get(name, 0) + amount
    series = sorted(series_totals, key=lambda s: (-series_totals[s], s))
    return _stack(chosen, list(chosen), labels, series, scale)


def stacked_columns(
    values: Mapping[str, Mapping[str, int]], *, series: Sequence[str], scale: float = 200.0
) -> Chart:
    """One column per key (days, in key order) stacked by ``series`` in that order."""
    order = sorted(values)
    return _stack(values, order, {}, series, scale)
