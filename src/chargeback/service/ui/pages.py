"""The UI's pages: each reads through the query API's own functions and renders a template.

::

    /ui/              overview: totals, reconciliation, cost by identity stacked by product
                      type (UNALLOCATED shown as its own bar), cost per day, top tables
    /ui/slice         one identity, resource, environment or product type: day over day,
                      by product type, resource and identity
    /ui/lines         the billing lines behind a slice (each links to its explanation)
    /ui/explain       one line, its parts, rules and reasons
    /ui/dates         every day's status, reconciliation and the runs

Every page takes ``tenant`` (optional with one tenant) and ``window`` (as the API).
A malformed parameter renders the page's error box with the API's message and a 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from chargeback.core.models import UNALLOCATED
from chargeback.core.money import format_amount, to_decimal
from chargeback.core.query import AllocationSet
from chargeback.core.query.teams import NOT_ATTRIBUTED
from chargeback.errors import QueryError
from chargeback.service.api._endpoint import ApiContext, ApiError
from chargeback.service.api.allocation import (
    CURRENCY,
    AllocationParams,
    AllocationResult,
    compute_allocation,
)
from chargeback.service.api.explain import ExplainParams, explain_line
from chargeback.service.api.status import DatesParams, compute_dates, run_model
from chargeback.service.ui.charts import stacked_bars, stacked_columns

__all__ = ["PAGES", "SLICE_DIMENSIONS", "templates"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

SLICE_DIMENSIONS = ("team", "identity", "resource", "environment", "product_type")
"""What the slice page can be about."""

DEFAULT_WINDOW = "30d"
TOP = 12

Context = Callable[[Request], Awaitable[ApiContext]]


def money(minor: int | str | None) -> str:
    """An amount for a person: cents, thousands separated (the exact value is the title)."""
    if minor is None:
        return ""
    value = Decimal(minor) if isinstance(minor, str) else to_decimal(minor)
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"


def exact(minor: int) -> str:
    """The exact amount (nine places)."""
    return format_amount(minor)


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` in percent, one place (empty for a zero whole)."""
    if whole == 0:
        return ""
    return f"{Decimal(part * 100) / Decimal(whole):.1f} %"


templates.env.filters.update(money=money, exact=exact)
templates.env.globals.update(percent=percent, currency=CURRENCY, UNALLOCATED=UNALLOCATED)


@dataclass(frozen=True, slots=True)
class Page:
    """What every page shows in its header."""

    tenant: str
    tenants: list[str]
    window: str

    def link(self, path: str, **params: str | list[str]) -> str:
        """A UI link keeping this page's tenant and window."""
        query = {"tenant": self.tenant, "window": self.window, **params}
        return f"/ui{path}?{urlencode(query, doseq=True)}"


async def _page(ctx: ApiContext) -> Page:
    tenants = await ctx.storage.tenants()
    if ctx.scope.tenant is not None:
        tenants = [t for t in tenants if t == ctx.scope.tenant]
    tenant = await ctx.tenant(ctx.request.query_params.get("tenant") or None)
    return Page(tenant, tenants, ctx.request.query_params.get("window") or DEFAULT_WINDOW)


async def _allocation(
    ctx: ApiContext, page: Page, aggregate: str, *, step: str | None = None,
    filters: list[str] | None = None, limit: int | None = None,
) -> AllocationResult:  # fmt: skip
    params = AllocationParams.model_validate(
        {"tenant": page.tenant, "window": page.window, "aggregate": aggregate, "step": step,
         "filter": filters or [], "limit": limit}
    )  # fmt: skip
    return await compute_allocation(ctx, params, unlimited=limit is None)


def _pairs(result: AllocationResult) -> dict[str, dict[str, int]]:
    """A two-dimension answer as first key -> second key -> cost."""
    (only,) = result.sets
    out: dict[str, dict[str, int]] = {}
    for e in only.entries:
        out.setdefault(e.key[0], {})[e.key[1]] = e.amounts.cost
    return out


def _days(result: AllocationResult) -> dict[str, dict[str, int]]:
    """A ``step=1d`` answer by cost type as day -> cost type -> cost (calculated days)."""
    out: dict[str, dict[str, int]] = {}
    for s in result.sets:
        if s.calculated_days:
            out[s.window.start.isoformat()] = {e.key[0]: e.amounts.cost for e in s.entries}
    return out


def _one(result: AllocationResult) -> AllocationSet:
    (only,) = result.sets
    return only


async def overview(ctx: ApiContext, page: Page) -> dict[str, Any]:
    """The overview's data."""
    by_team = await _allocation(ctx, page, "team,product_type")
    pairs = _pairs(by_team)
    attributed = set(pairs) - {NOT_ATTRIBUTED}
    if not attributed:  # no ownership step: identities stand in for teams
        by_team = await _allocation(ctx, page, "identity,product_type")
        pairs = _pairs(by_team)
    days = await _allocation(ctx, page, "cost_type", step="1d")
    teams = await _allocation(ctx, page, "team") if attributed else None
    identities = await _allocation(ctx, page, "identity", limit=TOP)
    environments = await _allocation(ctx, page, "environment")
    products = await _allocation(ctx, page, "product_type")
    return {
        "title": "Overview",
        "result": identities,
        "totals": _one(identities),
        "bars": stacked_bars(pairs, labels=by_team.names, top=TOP),
        "by": "team" if attributed else "identity",
        "teams": None if teams is None else _one(teams),
        "not_attributed": NOT_ATTRIBUTED in pairs,
        "columns": stacked_columns(_days(days), series=("usage", "shared", "unallocated")),
        "identities": _one(identities),
        "environments": _one(environments),
        "products": _one(products),
        "names": {**identities.names, **environments.names},
    }


async def slice_page(ctx: ApiContext, page: Page) -> dict[str, Any]:
    """One identity, resource, environment or product type, broken down."""
    dim = ctx.request.query_params.get("dim", "identity")
    value = ctx.request.query_params.get("value", "")
    if dim not in SLICE_DIMENSIONS:
        raise QueryError(f"dim: expected one of {', '.join(SLICE_DIMENSIONS)}, got {dim!r}",
                         parameter="dim")  # fmt: skip
    only = [f"{dim}:{value}"]
    days = await _allocation(ctx, page, "cost_type", step="1d", filters=only)
    tables = {}
    for other in ("identity", "product_type", "resource"):
        if other != dim:
            tables[other] = await _allocation(ctx, page, other, filters=only, limit=200)
    names = {k: v for t in tables.values() for k, v in t.names.items()}
    names.update(await ctx.source.display_names(page.tenant, [value]))
    total = _one(next(iter(tables.values())))
    return {
        "title": f"{dim.replace('_', ' ')} {names.get(value, value) or '(none)'}",
        "dim": dim, "value": value, "label": names.get(value), "totals": total,
        "columns": stacked_columns(_days(days), series=("usage", "shared", "unallocated")),
        "tables": tables, "names": names,
    }  # fmt: skip


async def lines_page(ctx: ApiContext, page: Page) -> dict[str, Any]:
    """The lines behind a slice: the part of each line the slice was charged."""
    filters = ctx.request.query_params.getlist("f")
    result = await _allocation(ctx, page, "date,line,product_type,resource", filters=filters,
                               limit=500)  # fmt: skip
    return {"title": "Billing lines", "filters": filters, "result": result,
            "lines": _one(result)}  # fmt: skip


async def explain_page(ctx: ApiContext, page: Page) -> dict[str, Any]:
    """One line and its parts."""
    q = ctx.request.query_params
    date = q.get("date")
    params = ExplainParams.model_validate(
        {"tenant": page.tenant, "line_id": q.get("line_id", ""), "date": date or None}
    )
    answer = await explain_line(ctx, params)
    return {"title": f"Line {answer.line.line_id}", "answer": answer}


async def dates_page(ctx: ApiContext, page: Page) -> dict[str, Any]:
    """Every day's status and the runs."""
    answer = await compute_dates(ctx, DatesParams(tenant=page.tenant, window=page.window))
    runs = [run_model(r) for r in await ctx.storage.list_runs(page.tenant, limit=20)]
    calculated = [d for d in answer.dates if d.calculated]
    mismatched = [d for d in calculated if not d.reconciled]
    return {"title": "Dates and runs", "answer": answer, "runs": runs,
            "calculated": calculated, "mismatched": mismatched}  # fmt: skip


PAGES: dict[str, tuple[str, Callable[[ApiContext, Page], Awaitable[dict[str, Any]]]]] = {
    "/": ("overview.html", overview),
    "/slice": ("slice.html", slice_page),
    "/lines": ("lines.html", lines_page),
    "/explain": ("explain.html", explain_page),
    "/dates": ("dates.html", dates_page),
}


def page_handler(path: str, context: Context) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of one page."""
    template, build = PAGES[path]

    async def serve(request: Request) -> Response:
        ctx = await context(request)
        page: Page | None = None
        try:
            page = await _page(ctx)
            data = await build(ctx, page)
        except (QueryError, ApiError, ValidationError) as exc:
            status = exc.status if isinstance(exc, ApiError) else 400
            return templates.TemplateResponse(
                request, "error.html", {"page": page, "title": "Error", "error": str(exc)},
                status_code=status,
            )  # fmt: skip
        return templates.TemplateResponse(request, template, {"page": page, **data})

    return serve
