"""``GET /api/v1/explain``: one billing line and every part it was split into (DESIGN §10, §15).

"Why was I charged for this line": the line as billed, then each part with its
identity, cost type, the rule that produced it and the rule's reason, and its share of
the line. The parts sum to the line exactly (``reconciled``).

The usage figures and weights behind a usage split come from the usage ledger
(DESIGN §13), which is not stored yet: until it is, ``usage`` says so and the rule and
reason of each part are the explanation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from pydantic import Field
from starlette.responses import Response

from chargeback.core.models import ChargebackRow
from chargeback.core.money import format_amount
from chargeback.core.query import BillingLine
from chargeback.errors import QueryError
from chargeback.service.api._csv import csv_response, wants_csv
from chargeback.service.api._endpoint import (
    ApiContext,
    ApiError,
    Endpoint,
    TenantParams,
    model_response,
)
from chargeback.service.api._models import ExplainAnswer, LineModel, PartModel
from chargeback.service.api.allocation import CURRENCY

__all__ = ["USAGE_NOTE", "ExplainParams", "endpoint", "explain_line"]

USAGE_NOTE = (
    "usage figures are not stored yet (the usage ledger, DESIGN §13, comes with issue 15); "
    "each part's rule and reason say how the line was split"
)


class ExplainParams(TenantParams):
    """The explanation's parameters."""

    line_id: str = Field(description="the billing line's id")
    date: dt.date | None = Field(
        None, description="the line's day (needed only when the id occurs on several days)"
    )
    format: Literal["json", "csv"] | None = Field(None, description="json or csv")


def _share(part: int, whole: int) -> str | None:
    if whole == 0:
        return None
    ratio = Fraction(part, whole)
    return f"{Decimal(ratio.numerator) / Decimal(ratio.denominator):.9f}"


def _opt(amount: int | None) -> str | None:
    return None if amount is None else format_amount(amount)


async def _find_line(ctx: ApiContext, tenant: str, p: ExplainParams) -> BillingLine:
    if p.date is not None:
        days = [p.date]
    else:
        states = await ctx.storage.get_date_states(tenant, dt.date.min, dt.date.max)
        days = sorted(states)
    lines = await ctx.source.billing_lines(tenant, p.line_id, days)
    if not lines:
        where = f" on {p.date}" if p.date else ""
        raise ApiError(404, f"no billing line {p.line_id!r}{where} for tenant {tenant!r}",
                       parameter="line_id")  # fmt: skip
    if len(lines) > 1:
        found = ", ".join(line.day.isoformat() for line in lines)
        raise QueryError(
            f"date: line {p.line_id!r} occurs on several days ({found}); give date=YYYY-MM-DD",
            parameter="date",
        )
    return lines[0]


def _parts(rows: list[ChargebackRow], amount: int, names: dict[str, str]) -> list[PartModel]:
    return [
        PartModel(
            identity_id=r.identity_id,
            identity_name=names.get(r.identity_id),
            cost_type=r.cost_type,
            rule=r.rule,
            reason=r.reason,
            amount=format_amount(r.amount),
            share=_share(r.amount, amount),
        )
        for r in rows
    ]


def _csv_rows(line: LineModel, parts: list[PartModel]) -> Iterator[list[object]]:
    for part in parts:
        yield [line.date, line.line_id, line.product_type, line.resource_id or "",
               line.amount, part.identity_id, part.identity_name or "",
               part.cost_type, part.rule, part.reason or "", part.amount,
               part.share or ""]  # fmt: skip


async def explain_line(ctx: ApiContext, p: ExplainParams) -> ExplainAnswer:
    """The explanation of one line (what the JSON, the CSV and the UI show).

    Raises:
        QueryError: the id occurs on several days and no date was given.
        ApiError: no such line (404), or the tenant is outside the token's scope.
    """
    tenant = await ctx.tenant(p.tenant)
    line = await _find_line(ctx, tenant, p)
    rows = await ctx.source.line_rows(tenant, line.day, line.line_id)
    ids = {r.identity_id for r in rows} | {line.resource_id or "", line.env_id or ""}
    names = await ctx.source.display_names(tenant, ids)
    allocated = sum(r.amount for r in rows)
    model = LineModel(
        date=line.day.isoformat(),
        line_id=line.line_id,
        product_type=line.product_type,
        product_category=line.product_category,
        resource_id=line.resource_id,
        resource_name=names.get(line.resource_id or ""),
        env_id=line.env_id,
        environment_name=names.get(line.env_id or ""),
        amount=format_amount(line.amount),
        quantity=line.quantity,
        unit=line.unit,
        unit_price=line.unit_price,
        original_amount=_opt(line.original_amount),
        discount_amount=_opt(line.discount_amount),
        description=line.description,
        error=line.error,
    )
    return ExplainAnswer(
        tenant=tenant, currency=CURRENCY, line=model, allocated=format_amount(allocated),
        reconciled=allocated == line.amount, parts=_parts(rows, line.amount, names),
        usage=USAGE_NOTE,
    )  # fmt: skip


async def explain(ctx: ApiContext, p: ExplainParams) -> Response:
    """Explain one billing line."""
    answer = await explain_line(ctx, p)
    if wants_csv(ctx.request, p.format):
        header = ["date", "line_id", "product_type", "resource_id", "line_amount", "identity_id",
                  "identity_name", "cost_type", "rule", "reason", "amount", "share"]  # fmt: skip
        return csv_response(
            header, _csv_rows(answer.line, answer.parts),
            filename=f"explain-{answer.tenant}-{answer.line.date}.csv",
            headers={"x-chargeback-currency": CURRENCY,
                     "x-chargeback-reconciled": str(answer.reconciled).lower()},
        )  # fmt: skip
    return model_response(answer)


endpoint = Endpoint(
    "/explain", "One billing line, every part it was split into, and why", ExplainParams,
    ExplainAnswer, explain, csv=True,
)  # fmt: skip
