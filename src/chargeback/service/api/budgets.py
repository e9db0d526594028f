"""``GET /api/v1/budgets`` and ``/forecast``: a month's team budgets and forecasts (DESIGN §17).

Both read the stored team totals of the month (``month=YYYY-MM``; default: the month of
the tenant's newest calculated date) and evaluate them on the request, so they always
agree with the data committed so far. Amounts are decimal strings in the bill's
currency. ``complete`` is false while a day of the month up to ``as_of`` is not
calculated or not attributed: ``spent`` then leaves it out (``missing_days``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import Response

from chargeback.core.budgets import (
    BudgetStatus,
    Forecast,
    MonthView,
    ThresholdStatus,
    current_month,
    read_month,
)
from chargeback.core.money import format_amount
from chargeback.errors import QueryError
from chargeback.service.api._endpoint import ApiContext, Endpoint, TenantParams, model_response
from chargeback.service.api.allocation import CURRENCY

__all__ = ["budgets_endpoint", "forecast_endpoint"]

_RATIO_PLACES = 6


class MonthParams(TenantParams):
    """The month's parameters."""

    month: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}$",
        description="YYYY-MM (default: the month of the newest calculated date)",
    )  # fmt: skip


class ForecastModel(BaseModel):
    """A team's month-end forecast (method: README, "Budgets and forecasts")."""

    team: str
    spent: str
    forecast: str | None
    low: str | None
    high: str | None
    observed_days: int
    unobserved_days: int
    rate_days: list[str]


class ThresholdModel(BaseModel):
    """One spend threshold of a budget."""

    percent: str
    crossed: bool
    crossed_on: str | None


class BudgetModel(BaseModel):
    """One budget evaluated on the month."""

    name: str
    team: str
    amount: str
    spent: str
    spent_ratio: str
    thresholds: list[ThresholdModel]
    forecast: ForecastModel
    forecast_threshold: str | None
    forecast_crossed: bool | None


class _MonthAnswer(BaseModel):
    tenant: str
    currency: str
    month: str | None
    as_of: str | None
    complete: bool
    missing_days: list[str]


class BudgetsAnswer(_MonthAnswer):
    """``/api/v1/budgets``."""

    budgets: list[BudgetModel]


class ForecastAnswer(_MonthAnswer):
    """``/api/v1/forecast``."""

    forecast_days: int
    teams: list[ForecastModel]


def _amount(minor: int | None) -> str | None:
    return None if minor is None else format_amount(minor)


def _forecast_model(team: str, fc: Forecast) -> ForecastModel:
    return ForecastModel(
        team=team, spent=format_amount(fc.spent), forecast=_amount(fc.point),
        low=_amount(fc.low), high=_amount(fc.high), observed_days=fc.observed_days,
        unobserved_days=fc.unobserved_days, rate_days=[d.isoformat() for d in fc.rate_days],
    )  # fmt: skip


def _threshold_model(t: ThresholdStatus) -> ThresholdModel:
    day = None if t.crossed_on is None else t.crossed_on.isoformat()
    return ThresholdModel(percent=str(t.percent), crossed=t.crossed, crossed_on=day)


def _budget_model(s: BudgetStatus) -> BudgetModel:
    ratio = s.spent_ratio
    threshold = s.rule.forecast_threshold
    return BudgetModel(
        name=s.rule.name,
        team=s.rule.team,
        amount=format_amount(s.rule.amount_minor),
        spent=format_amount(s.forecast.spent),
        spent_ratio=f"{ratio.numerator / ratio.denominator:.{_RATIO_PLACES}f}",
        thresholds=[_threshold_model(t) for t in s.thresholds],
        forecast=_forecast_model(s.rule.team, s.forecast),
        forecast_threshold=None if threshold is None else str(threshold),
        forecast_crossed=s.forecast_crossed,
    )


async def _view(ctx: ApiContext, p: MonthParams) -> tuple[str, MonthView | None]:
    tenant = await ctx.tenant(p.tenant)
    if p.month is None:
        month = await current_month(ctx.storage, tenant)
    else:
        try:
            month = dt.date.fromisoformat(f"{p.month}-01")
        except ValueError as exc:
            raise QueryError(f"month: not a month: {p.month!r}", parameter="month") from exc
    if month is None:
        return tenant, None
    return tenant, await read_month(ctx.storage, tenant, month, ctx.budgets)


def _month_fields(tenant: str, view: MonthView | None) -> dict[str, Any]:
    if view is None:
        return {"tenant": tenant, "currency": CURRENCY, "month": None, "as_of": None,
                "complete": False, "missing_days": []}  # fmt: skip
    missing = sorted({d for b in view.budgets for d in b.missing_days} | set(_missing(view)))
    return {
        "tenant": tenant,
        "currency": CURRENCY,
        "month": view.month.strftime("%Y-%m"),
        "as_of": view.observed[-1].isoformat() if view.observed else None,
        "complete": bool(view.observed) and not missing,
        "missing_days": [d.isoformat() for d in missing],
    }


def _missing(view: MonthView) -> list[dt.date]:
    if not view.observed:
        return []
    days = set(view.observed)
    first, last = view.month, view.observed[-1]
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)
            if first + dt.timedelta(days=i) not in days]  # fmt: skip


async def budgets(ctx: ApiContext, p: MonthParams) -> Response:
    """Every budget of the tenant on the month."""
    tenant, view = await _view(ctx, p)
    models = [] if view is None else [_budget_model(s) for s in view.budgets]
    return model_response(BudgetsAnswer(**_month_fields(tenant, view), budgets=models))


async def forecast(ctx: ApiContext, p: MonthParams) -> Response:
    """Every team's forecast of the month."""
    tenant, view = await _view(ctx, p)
    teams = [] if view is None else [_forecast_model(t, f) for t, f in view.forecasts().items()]
    return model_response(
        ForecastAnswer(**_month_fields(tenant, view), forecast_days=ctx.budgets.forecast_days,
                       teams=teams)
    )  # fmt: skip


budgets_endpoint = Endpoint(
    "/budgets", "Each team budget of a month: spent, thresholds crossed, forecast", MonthParams,
    BudgetsAnswer, budgets,
)  # fmt: skip
forecast_endpoint = Endpoint(
    "/forecast", "Every team's month-end forecast with its interval", MonthParams,
    ForecastAnswer, forecast,
)  # fmt: skip
