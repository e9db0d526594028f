"""``GET /billing/v1/costs``: daily cost rows with late data and opaque paging."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ccloud_sim._det import day_start
from ccloud_sim._http import (
    SimState,
    TokenError,
    absolute,
    decode_token,
    encode_token,
    error,
    json_response,
    sim,
)
from ccloud_sim.billing import SETTLE_HOURS

__all__ = ["routes"]

DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 10000
MAX_LOOKBACK_DAYS = 365


def _parse_date(value: str | None, name: str) -> date | Response:
    if not value:
        return error(400, f"Missing required query parameter '{name}'", parameter=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        return error(400, f"'{name}' must be a date YYYY-MM-DD, got {value!r}", parameter=name)


def _texts(state: SimState, d: date, as_of: datetime) -> list[str]:
    """Encoded rows of *d* as visible at *as_of* (cached per settled day / late hour)."""
    hours = int((as_of - day_start(d + timedelta(days=1))).total_seconds() // 3600)
    if hours < 0:
        return []
    key = (d.isoformat(), -1 if hours >= SETTLE_HOURS else hours)
    now = None if hours >= SETTLE_HOURS else as_of
    texts = state.billing_text.get_or_make(
        key, lambda: [line.to_json_text() for line in state.org.billing_lines(d, now)]
    )
    state.billing_count[key] = len(texts)
    return texts


def _count(state: SimState, d: date, as_of: datetime) -> int:
    """How many rows :func:`_texts` returns, without keeping the texts if known."""
    hours = int((as_of - day_start(d + timedelta(days=1))).total_seconds() // 3600)
    if hours < 0:
        return 0
    known = state.billing_count.get((d.isoformat(), -1 if hours >= SETTLE_HOURS else hours))
    return len(_texts(state, d, as_of)) if known is None else known


async def costs(request: Request) -> Response:
    """List cost rows for ``[start_date, end_date)``."""
    state = sim(request)
    q = request.query_params
    token = q.get("page_token")
    if token:
        try:
            data = decode_token(token)
            start, end = date.fromisoformat(data["s"]), date.fromisoformat(data["e"])
            offset, size = int(data["o"]), int(data["n"])
            as_of = datetime.fromtimestamp(int(data["a"]), UTC)
        except (TokenError, KeyError, TypeError, ValueError):
            return error(400, "Invalid page token", parameter="page_token")
        for name, value in (("start_date", start), ("end_date", end)):
            if q.get(name) not in (None, value.isoformat()):
                return error(400, f"'{name}' does not match the page_token", parameter=name)
    else:
        parsed_start = _parse_date(q.get("start_date"), "start_date")
        if isinstance(parsed_start, Response):
            return parsed_start
        parsed_end = _parse_date(q.get("end_date"), "end_date")
        if isinstance(parsed_end, Response):
            return parsed_end
        start, end = parsed_start, parsed_end
        problem = _check_range(state, start, end)
        if problem is not None:
            return problem
        try:
            size = int(q.get("page_size", DEFAULT_PAGE_SIZE))
        except ValueError:
            return error(400, "page_size must be an integer", parameter="page_size")
        if not 1 <= size <= MAX_PAGE_SIZE:
            detail = f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}"
            return error(400, detail, parameter="page_size")
        offset = 0
        as_of = state.clock.now().replace(microsecond=0)
    take = size
    if getattr(request.state, "sim_truncate", False) and size > 1:
        take = max(1, size // 2)
    page, more = _collect(state, (start, end), offset, take, as_of)
    if state.faults.billing_amounts:
        page = _bad_amounts(page, state.faults.billing_amounts)
    nxt = "null"
    if more:
        tok = encode_token(
            {
                "s": start.isoformat(),
                "e": end.isoformat(),
                "o": offset + take,
                "n": size,
                "a": int(as_of.timestamp()),
            }
        )
        nxt = '"' + absolute(request, {"page_token": tok}) + '"'
    body = (
        '{"api_version":"billing/v1","kind":"CostList","metadata":{"next":'
        + nxt
        + '},"data":['
        + ",".join(page)
        + "]}"
    )
    return json_response(body)


def _bad_amounts(page: list[str], amounts: dict[str, Any]) -> list[str]:
    """The page with the ``billing_amounts`` fault applied: each row of a listed line type
    reports that amount (its other fields stay true)."""
    out = []
    for text in page:
        row = json.loads(text)
        if row.get("line_type") in amounts:
            row["amount"] = amounts[row["line_type"]]
            out.append(json.dumps(row))
        else:
            out.append(text)
    return out


def _collect(
    state: SimState, span: tuple[date, date], offset: int, take: int, as_of: datetime
) -> tuple[list[str], bool]:
    """Rows ``[offset, offset + take)`` of the range, and whether more rows follow."""
    start, end = span
    page: list[str] = []
    skip = offset
    d = start
    while d < end:
        count = _count(state, d, as_of)
        if skip >= count:
            skip -= count
        else:
            rows = _texts(state, d, as_of)
            room = take - len(page)
            page.extend(rows[skip : skip + room])
            if skip + room < len(rows):
                return page, True
            skip = 0
        d += timedelta(days=1)
        if len(page) >= take:
            return page, any(_count(state, x, as_of) for x in _days(d, end))
    return page, False


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _check_range(state: SimState, start: date, end: date) -> Response | None:
    if end <= start:
        return error(400, f"end_date {end} must be after start_date {start}", parameter="end_date")
    if (end - start).days > state.max_billing_days:
        detail = (
            f"the range {start}..{end} spans {(end - start).days} days; "
            f"at most {state.max_billing_days} days are allowed per request"
        )
        return error(400, detail, parameter="end_date")
    oldest = state.clock.today() - timedelta(days=MAX_LOOKBACK_DAYS)
    if start < oldest:
        detail = f"start_date {start} is more than one year in the past (oldest {oldest})"
        return error(400, detail, parameter="start_date")
    return None


routes = [Route("/billing/v1/costs", costs)]
