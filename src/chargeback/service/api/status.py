"""``GET /api/v1/dates`` and ``/runs``: what was calculated, when, and by which run.

A date is ``open`` while its bill may still change (within the tenant's ``cutoff_days``
of today, DESIGN §4: Confluent settles within ~72 h), ``closed`` after. A day of the
window that was never calculated is listed with ``calculated: false``.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from starlette.responses import Response

from chargeback.core.money import format_amount
from chargeback.core.query import parse_window
from chargeback.core.storage.backend import DateState, RunRecord
from chargeback.service.api._endpoint import ApiContext, Endpoint, TenantParams, model_response
from chargeback.service.api._models import DateModel, DatesAnswer, RunModel, RunsAnswer, WindowModel
from chargeback.service.api.allocation import CURRENCY

__all__ = [
    "DatesParams",
    "compute_dates",
    "dates_endpoint",
    "run_model",
    "runs_endpoint",
]


class DatesParams(TenantParams):
    """The date status's parameters."""

    window: str = Field("30d", description="as for /allocation")


class RunsParams(TenantParams):
    """The run list's parameters."""

    limit: int = Field(20, ge=1, le=1000, description="newest runs first")


def run_model(r: RunRecord) -> RunModel:
    """One run as the API shows it."""
    return RunModel(
        run_id=r.run_id,
        trigger=r.trigger,
        status=r.status,
        started_at=r.started_at.isoformat(),
        finished_at=None if r.finished_at is None else r.finished_at.isoformat(),
        counts=dict(r.counts),
        error=r.error,
    )


def _date_model(day: dt.date, state: DateState | None, status: str) -> DateModel:
    if state is None:
        return DateModel(
            date=day.isoformat(), calculated=False, status=status, calc_seq=None,
            calculated_at=None, billing_fingerprint=None, settings_fingerprint=None,
            inventory_fingerprint=None, line_count=None, row_count=None, billed=None,
            allocated=None, unallocated=None, reconciled=None,
        )  # fmt: skip
    return DateModel(
        date=day.isoformat(),
        calculated=True,
        status=status,
        calc_seq=state.calc_seq,
        calculated_at=state.calculated_at.isoformat(),
        billing_fingerprint=state.billing_fingerprint,
        settings_fingerprint=state.settings_fingerprint,
        inventory_fingerprint=state.inventory_fingerprint,
        line_count=state.line_count,
        row_count=state.row_count,
        billed=format_amount(state.billed_total),
        allocated=format_amount(state.allocated_total),
        unallocated=format_amount(state.unallocated_total),
        reconciled=state.billed_total == state.allocated_total,
    )


async def dates(ctx: ApiContext, p: DatesParams) -> Response:
    """The status of every day of the window, newest first."""
    return model_response(await compute_dates(ctx, p))


async def compute_dates(ctx: ApiContext, p: DatesParams) -> DatesAnswer:
    """The status of every day of the window, newest first (for the JSON and the UI)."""
    tenant = await ctx.tenant(p.tenant)
    window = parse_window(p.window, ctx.today)
    states = await ctx.storage.get_date_states(tenant, window.start, window.end)
    open_days = ctx.open_days(tenant)
    first_closed = ctx.today - dt.timedelta(days=open_days)
    days = sorted(window.dates(), reverse=True)
    runs = await ctx.storage.list_runs(tenant, limit=1)
    # A restated day (DESIGN §16: its bill changed after it closed) is open again while
    # the stored period state says so, whatever the cutoff rule says.
    stored = await ctx.storage.period_statuses(tenant, window.start, window.end)
    restated = {r.day for r in await ctx.storage.list_restatements(tenant, limit=1000)}
    reopened = {d for d in restated if stored.get(d) == "open"}
    return DatesAnswer(
        tenant=tenant,
        currency=CURRENCY,
        window=WindowModel(**window.to_wire()),
        open_days=open_days,
        last_run=run_model(runs[0]) if runs else None,
        dates=[
            _date_model(
                d, states.get(d), "open" if d >= first_closed or d in reopened else "closed"
            )
            for d in days
        ],
    )


async def runs(ctx: ApiContext, p: RunsParams) -> Response:
    """The newest runs of the tenant."""
    tenant = await ctx.tenant(p.tenant)
    records = await ctx.storage.list_runs(tenant, limit=p.limit)
    return model_response(RunsAnswer(tenant=tenant, runs=[run_model(r) for r in records]))


dates_endpoint = Endpoint(
    "/dates", "Per-date status: calculated, fingerprints, totals, open or closed", DatesParams,
    DatesAnswer, dates,
)  # fmt: skip
runs_endpoint = Endpoint("/runs", "The newest runs, with counts and errors", RunsParams,
                         RunsAnswer, runs)  # fmt: skip
