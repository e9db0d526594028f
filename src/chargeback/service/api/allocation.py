"""``GET /api/v1/allocation``: chargeback amounts by any dimensions over a window (DESIGN §15).

In the spirit of OpenCost's allocation API::

    /api/v1/allocation?tenant=acme&window=2026-11-01,2026-11-30&aggregate=identity
        &step=1d&filter=product_type:KAFKA_BASE&limit=10

Each set (one per step, or one for the window) carries the billed and allocated totals
of its calculated days and the days not calculated yet, so an answer says whether it is
complete and reconciles by itself. Entries are sorted by cost (largest first), ties by
key, so pages are deterministic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from starlette.responses import Response

from chargeback.core.money import format_amount
from chargeback.core.query import (
    MAX_LIMIT,
    AllocationSet,
    AllocationSpec,
    Amounts,
    Step,
    Window,
    build_sets,
    parse_aggregate,
    parse_filters,
    parse_sort,
    parse_step,
    parse_window,
)
from chargeback.core.query.aggregate import DayTotal, GroupRow
from chargeback.core.query.spec import TEAM
from chargeback.core.query.teams import current_teams, source_dimensions, team_groups
from chargeback.core.storage.backend import DateState
from chargeback.service.api._csv import csv_response, wants_csv
from chargeback.service.api._endpoint import ApiContext, Endpoint, TenantParams, model_response
from chargeback.service.api._models import (
    AllocationAnswer,
    AllocationEntryModel,
    AllocationSetModel,
    AmountsModel,
    WindowModel,
)

__all__ = [
    "CURRENCY",
    "NAMED_DIMENSIONS",
    "AllocationParams",
    "AllocationResult",
    "compute_allocation",
    "endpoint",
]

CURRENCY = "USD"
"""The bill's currency: Confluent Cloud's billing API states every amount in USD."""

NAMED_DIMENSIONS = ("identity", "resource", "environment")
"""Dimensions whose values have display names in the inventory."""

DEFAULT_LIMIT = 1000


class AllocationParams(TenantParams):
    """The allocation query's parameters."""

    window: str = Field(
        "30d",
        description="START,END (both included), YYYY-MM-DD, YYYY-MM, Nd, today, yesterday, "
        "month or lastmonth",
    )
    aggregate: str | None = Field(
        None,
        description="comma-separated dimensions: identity (default), product_type, "
        "product_category, environment, resource, cost_type, rule, line, date, team",
    )
    step: str | None = Field(None, description="1d, 1w or 1mo (default: the whole window)")
    accumulate: bool = Field(False, description="one set for the whole window, whatever the step")
    filters: list[str] = Field(
        default_factory=list,
        alias="filter",
        description="DIMENSION:V1,V2 or DIMENSION!:V (repeatable; all must hold)",
    )
    sort: str | None = Field(None, description="-cost (default), cost or key")
    limit: int | None = Field(
        None, ge=0, le=MAX_LIMIT, description=f"entries per set (JSON default {DEFAULT_LIMIT})"
    )
    offset: int = Field(0, ge=0, description="entries skipped per set")
    format: Literal["json", "csv"] | None = Field(
        None, description="json or csv (default: by the Accept header, else json)"
    )


def _amounts(a: Amounts) -> AmountsModel:
    return AmountsModel(
        cost=format_amount(a.cost),
        usage=format_amount(a.usage),
        shared=format_amount(a.shared),
        unallocated=format_amount(a.unallocated),
        other=format_amount(a.other),
    )


def _set_model(s: AllocationSet, dims: Sequence[str], names: dict[str, str]) -> AllocationSetModel:
    named = [d for d in dims if d in NAMED_DIMENSIONS]
    entries = [
        AllocationEntryModel(
            key=dict(zip(dims, e.key, strict=True)),
            names={d: names.get(v) for d, v in zip(dims, e.key, strict=True) if d in named},
            **_amounts(e.amounts).model_dump(),
        )
        for e in s.entries
    ]
    return AllocationSetModel(
        window=WindowModel(**s.window.to_wire()),
        billed=format_amount(s.billed),
        allocated=format_amount(s.allocated),
        unallocated=format_amount(s.unallocated),
        reconciled=s.billed == s.allocated,
        selected=_amounts(s.selected),
        total_entries=s.total_entries,
        calculated_days=len(s.calculated_days),
        missing_days=[d.isoformat() for d in s.missing_days],
        entries=entries,
    )


def _name_ids(sets: Sequence[AllocationSet], dims: Sequence[str]) -> set[str]:
    positions = [i for i, d in enumerate(dims) if d in NAMED_DIMENSIONS]
    return {e.key[i] for s in sets for e in s.entries for i in positions}


def _csv_rows(
    sets: Sequence[AllocationSet], dims: Sequence[str], names: dict[str, str]
) -> Iterator[list[object]]:
    positions = [i for i, d in enumerate(dims) if d in NAMED_DIMENSIONS]
    for s in sets:
        wire = s.window.to_wire()
        for e in s.entries:
            a = e.amounts
            yield [
                wire["start"], wire["end"], *e.key, *(names.get(e.key[i], "") for i in positions),
                *(format_amount(x) for x in (a.cost, a.usage, a.shared, a.unallocated, a.other)),
            ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """One allocation query, answered (what the JSON, the CSV and the UI render).

    Attributes:
        tenant: the tenant asked about.
        window: the window.
        step: the step (``None``: one set).
        spec: dimensions, filters, sort and page.
        sets: one per step.
        names: display names of the page's identity, resource and environment keys.
        billed: the window's billed total (minor units).
        allocated: its allocated total.
        unallocated: the part of ``allocated`` charged to UNALLOCATED.
    """

    tenant: str
    window: Window
    step: Step | None
    spec: AllocationSpec
    sets: list[AllocationSet]
    names: dict[str, str]
    billed: int
    allocated: int
    unallocated: int

    @property
    def missing_days(self) -> list[str]:
        """The window's days not calculated yet."""
        return [d.isoformat() for s in self.sets for d in s.missing_days]


async def compute_allocation(
    ctx: ApiContext, p: AllocationParams, *, unlimited: bool = False
) -> AllocationResult:
    """Answer an allocation query (``unlimited``: no default page size, as for CSV).

    Raises:
        QueryError: a malformed parameter.
        ApiError: the tenant is outside the token's scope or unknown.
    """
    tenant = await ctx.tenant(p.tenant)
    window = parse_window(p.window, ctx.today)
    step = None if p.accumulate else parse_step(p.step)
    limit = p.limit if p.limit is not None or unlimited else DEFAULT_LIMIT
    spec = AllocationSpec(
        parse_aggregate(p.aggregate), parse_filters(p.filters), parse_sort(p.sort), limit, p.offset
    )
    states = await ctx.storage.get_date_states(tenant, window.start, window.end)
    if TEAM in spec.dimensions or any(f.dimension == TEAM for f in spec.filters):
        groups = await _team_groups(ctx, tenant, window, spec, states, step=step)
    else:
        groups = await ctx.source.allocation_groups(
            tenant, window, step, spec.dimensions, spec.filters
        )
    totals = [
        DayTotal(s.day, s.billed_total, s.allocated_total, s.unallocated_total)
        for s in states.values()
    ]
    sets = build_sets(window, step, groups, totals, spec)
    names = await ctx.source.display_names(tenant, _name_ids(sets, spec.dimensions))
    return AllocationResult(
        tenant, window, step, spec, sets, names,
        billed=sum(t.billed for t in totals),
        allocated=sum(t.allocated for t in totals),
        unallocated=sum(t.unallocated for t in totals),
    )  # fmt: skip


_TEAM_ROLLUP = frozenset({TEAM, "product_type", "cost_type", "date"})
"""Queries within these dimensions read the days with a current team rollup from it."""


async def _team_groups(
    ctx: ApiContext,
    tenant: str,
    window: Window,
    spec: AllocationSpec,
    states: Mapping[dt.date, DateState],
    *,
    step: Step | None,
) -> list[GroupRow]:
    """Groups keyed with the team of each day's attribution (:mod:`chargeback.core.query.teams`)."""
    needed = {*spec.dimensions, *(f.dimension for f in spec.filters)}
    rolled: list[GroupRow] = []
    covered: set[dt.date] = set()
    if needed <= _TEAM_ROLLUP:
        rolled, covered = await ctx.source.team_rollup_groups(
            tenant, window, step, spec.dimensions, spec.filters
        )
        if covered >= set(states):
            return rolled
    asked = source_dimensions(spec.dimensions)
    row_filters = tuple(f for f in spec.filters if f.dimension != TEAM)
    team_filters = [f for f in spec.filters if f.dimension == TEAM]
    raw = await ctx.source.allocation_groups(tenant, window, Step.DAY, asked, row_filters)
    raw = [g for g in raw if g.day not in covered]
    teams = await current_teams(ctx.storage, tenant, states)
    return rolled + team_groups(raw, asked, spec.dimensions, teams, team_filters)


def _csv(r: AllocationResult) -> Response:
    dims = r.spec.dimensions
    named = [f"{d}_name" for d in dims if d in NAMED_DIMENSIONS]
    header = ["window_start", "window_end", *dims, *named,
              "cost", "usage", "shared", "unallocated", "other"]  # fmt: skip
    return csv_response(
        header,
        _csv_rows(r.sets, dims, r.names),
        filename=f"allocation-{r.tenant}-{r.window.start}-{r.window.last}.csv",
        headers={
            "x-chargeback-currency": CURRENCY,
            "x-chargeback-billed": format_amount(r.billed),
            "x-chargeback-allocated": format_amount(r.allocated),
            "x-chargeback-missing-days": str(len(r.missing_days)),
        },
    )


async def allocation(ctx: ApiContext, p: AllocationParams) -> Response:
    """Answer one allocation query (JSON or streamed CSV)."""
    as_csv = wants_csv(ctx.request, p.format)
    r = await compute_allocation(ctx, p, unlimited=as_csv)
    if as_csv:
        return _csv(r)
    return model_response(
        AllocationAnswer(
            tenant=r.tenant,
            currency=CURRENCY,
            window=WindowModel(**r.window.to_wire()),
            aggregate=list(r.spec.dimensions),
            step=None if r.step is None else r.step.value,
            accumulate=p.accumulate,
            filter=p.filters,
            sort=r.spec.sort.value,
            limit=r.spec.limit,
            offset=r.spec.offset,
            billed=format_amount(r.billed),
            allocated=format_amount(r.allocated),
            unallocated=format_amount(r.unallocated),
            reconciled=r.billed == r.allocated,
            missing_days=r.missing_days,
            sets=[_set_model(s, r.spec.dimensions, r.names) for s in r.sets],
        )
    )


endpoint = Endpoint(
    "/allocation",
    "Chargeback amounts by dimensions over a window, in steps, with the billed total",
    AllocationParams,
    AllocationAnswer,
    allocation,
    csv=True,
)
