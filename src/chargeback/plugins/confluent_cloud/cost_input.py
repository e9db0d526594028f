"""Billing lines from ``GET /billing/v1/costs`` (DESIGN §10, reference §2).

The range is read in windows of at most ``billing.days_per_query`` days with large
pages, and streamed: one page of rows is in memory at a time.

How rows become :class:`~chargeback.core.models.BillingLineItem`\\ s:

- ``product_type`` is the row's ``line_type``; ``product_category`` its ``product``
  (``""`` when null, e.g. some ``PROMO_CREDIT`` rows); ``resource_id`` and ``env_id``
  come from ``resource`` (both ``None`` for org-wide rows).
- Amounts go through :func:`~chargeback.core.money.to_minor` (exact); an amount
  beyond :data:`MAX_AMOUNT` (or NaN, Infinity, text) is malformed.
- ``line_id`` is the API's ``id``. Rows without an id get ``"k:" + digest`` of their
  natural key (date, env, resource, product, line type, network type, tier
  dimensions, description), suffixed ``#2``, ``#3``... when two such rows collide.
  A repeated id within a date is a duplicate: an identical row is dropped with a
  warning; a different row under the same id is kept as ``<id>#<digest>``.
- Tiered rows (same key, different ``tier_dimensions``) stay separate lines: they
  have distinct ids, and keeping them keeps each line traceable to a bill row.
- Malformed rows never stop the stream: a row whose amount cannot be read is yielded
  with ``error`` set, so the engine puts it on UNALLOCATED with the reason: its amount
  derived as ``original_amount - discount_amount`` when those parse, else refused
  (amount 0, the reported amount in ``attributes``; see :func:`_amounts`); a row
  without any readable date cannot be placed and is logged and skipped. Rows outside
  the requested days are dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import structlog

from chargeback.core.models import REFUSED, BillingLineItem
from chargeback.core.money import format_amount, to_minor
from chargeback.core.sources import HttpClient
from chargeback.core.sources.values import parse_decimal
from chargeback.plugins.confluent_cloud.config import BillingSettings

__all__ = ["MAX_AMOUNT", "CCloudCostInput", "parse_cost_row", "windows"]

_log = structlog.get_logger(__name__)

_ROWS_PER_YIELD = 500
"""Billing rows parsed between two yields to the event loop."""

ENDPOINT = "/billing/v1/costs"


def windows(start: dt.date, end: dt.date, days: int) -> list[tuple[dt.date, dt.date]]:
    """Split ``start <= day < end`` into consecutive windows of at most ``days`` days."""
    out: list[tuple[dt.date, dt.date]] = []
    cursor = start
    step = dt.timedelta(days=days)
    while cursor < end:
        stop = min(cursor + step, end)
        out.append((cursor, stop))
        cursor = stop
    return out


def _date(value: object) -> dt.date | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


MAX_AMOUNT = Decimal(10) ** 8
"""Largest absolute amount (currency units) one billing row may carry: far above any
real daily line, and small enough that a date's sums stay inside SQLite's 64-bit
integers of minor units. A row beyond it is malformed (UNALLOCATED with the reason)."""


_MAX_FLOAT = float(MAX_AMOUNT)
_NANOS_DIGITS = 9


def _minor(value: object) -> int | None:
    """An amount in minor units; ``None`` if it is not a number or out of range."""
    # Fast path for what the API sends, a JSON number: the digits of its shortest repr
    # are the exact decimal, so "36.05" is 36 units and 050000000 nanos. Anything else
    # (more than nine decimals, an exponent, text) takes the Decimal path.
    if type(value) is float and -_MAX_FLOAT <= value <= _MAX_FLOAT:
        text = repr(value)
        whole, _, frac = text.partition(".")
        if len(frac) <= _NANOS_DIGITS and "e" not in text:
            return int(whole + frac.ljust(_NANOS_DIGITS, "0"))
    dec = parse_decimal(value)
    return None if dec is None or dec.copy_abs() > MAX_AMOUNT else to_minor(dec)


def _amount_problem(name: str, value: object) -> str:
    dec = parse_decimal(value)
    if dec is not None and dec.copy_abs() > MAX_AMOUNT:
        return f"{name} {value!r} is out of range (more than {MAX_AMOUNT:,} in absolute value)"
    return f"{name} {value!r} is not a number"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _natural_key(day: dt.date, row: Mapping[str, Any], env: str | None, res: str | None) -> str:
    key = [
        day.isoformat(), env or "", res or "", _text(row.get("product")) or "",
        _text(row.get("line_type")) or "", _text(row.get("network_access_type")) or "",
        json.dumps(row.get("tier_dimensions") or {}, sort_keys=True, default=str),
        _text(row.get("description")) or "",
    ]  # fmt: skip
    return hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:24]


def _digest(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]


_date_of_text = functools.lru_cache(maxsize=4096)(_date)
"""``start_date`` texts already read (a window repeats ~30 of them 70k times)."""
_decimal_of_float = functools.lru_cache(maxsize=4096)(parse_decimal)
"""Unit prices already read (a price list has a few dozen)."""


def _cached_date(value: object) -> dt.date | None:
    return _date_of_text(value) if type(value) is str else _date(value)


def _price(value: object) -> Decimal | None:
    if type(value) is not float or not value:  # 0.0 == -0.0: their texts differ
        return parse_decimal(value)
    return _decimal_of_float(value)  # Decimals are immutable: sharing one is safe


def _amounts(
    row: Mapping[str, Any], errors: list[str], attrs: dict[str, str]
) -> tuple[int | None, int | None, int]:
    """``(original, discount, amount)`` in minor units; problems go to ``errors``.

    The one policy for an ``amount`` that cannot be read (DESIGN §5: nothing silently
    wrong), recorded in the line's ``error`` and so in its rows' ``reason``:

    - null or not a number, with ``original_amount`` (and ``discount_amount``, if
      given) readable: the amount is ``original_amount - discount_amount``, the bill's
      own arithmetic, and the line goes to UNALLOCATED with that reason: a derived
      amount is never charged to identities;
    - out of range (more than :data:`MAX_AMOUNT`), or unreadable with nothing to
      derive it from: the line is **refused**: stored with amount 0, its reported
      amount kept in ``attributes["reported_amount"]``, and reconcile counts it.
    """
    raw_original, raw_discount, raw_amount = (
        row.get("original_amount"), row.get("discount_amount"), row.get("amount"),
    )  # fmt: skip
    original = _minor(raw_original)
    discount = _minor(raw_discount)
    amount = _minor(raw_amount)
    if amount is None:
        amount = _unreadable_amount(raw_amount, original, discount, raw_discount, errors, attrs)
    if original is None and raw_original is not None and parse_decimal(raw_original) is not None:
        errors.append(_amount_problem("original_amount", raw_original))
    if discount is None and raw_discount is not None and parse_decimal(raw_discount) is not None:
        errors.append(_amount_problem("discount_amount", raw_discount))
    return original, discount, amount


def _unreadable_amount(  # noqa: PLR0917  (one call site, the parsed parts)
    raw: object,
    original: int | None,
    discount: int | None,
    raw_discount: object,
    errors: list[str],
    attrs: dict[str, str],
) -> int:
    """The amount of a line whose ``amount`` cannot be read (see :func:`_amounts`)."""
    problem = "amount is null" if raw is None else _amount_problem("amount", raw)
    dec = parse_decimal(raw)
    out_of_range = dec is not None and dec.copy_abs() > MAX_AMOUNT
    discount_ok = discount is not None or raw_discount is None
    if original is not None and discount_ok and not out_of_range:
        derived = original - (discount or 0)
        errors.append(
            f"{problem}: derived as original_amount - discount_amount = "
            f"{format_amount(derived)}, not charged to identities"
        )
        return derived
    attrs["reported_amount"] = "null" if raw is None else str(raw)
    errors.insert(0, f"{REFUSED}{problem}; the line is kept with amount 0 and its reported amount")
    return 0


def _attributes(row: Mapping[str, Any], display: str | None) -> dict[str, str]:
    attrs: dict[str, str] = {}
    get = row.get
    network, granularity = get("network_access_type"), get("granularity")
    if network is not None:
        attrs["network_access_type"] = str(network)
    if granularity is not None:
        attrs["granularity"] = str(granularity)
    tiers = get("tier_dimensions")
    if isinstance(tiers, dict):
        attrs["tier_dimensions"] = json.dumps(tiers, sort_keys=True)
    if display is not None:
        attrs["resource_name"] = display
    end_date = get("end_date")
    if end_date is not None:
        attrs["end_date"] = str(end_date)
    return attrs


def parse_cost_row(row: Mapping[str, Any]) -> BillingLineItem | None:
    """Turn one ``data[]`` item into a line (``line_id`` not yet de-duplicated).

    Returns ``None`` for a row without any readable date (logged).
    """
    get = row.get
    errors: list[str] = []
    day = _cached_date(get("start_date"))
    if day is None:
        end = _date(get("end_date"))
        if end is None:
            _log.error("billing row without a date skipped", id=get("id"))
            return None
        day = end - dt.timedelta(days=1)
        errors.append(f"start_date {get('start_date')!r} is not a date")
    resource = get("resource")
    res_id: str | None = None
    env_id: str | None = None
    display: str | None = None
    if isinstance(resource, dict):
        res_id = _text(resource.get("id")) or None
        display = _text(resource.get("display_name"))
        env = resource.get("environment")
        if isinstance(env, dict):
            env_id = _text(env.get("id")) or None
    attrs = _attributes(row, display)
    original, discount, amount = _amounts(row, errors, attrs)
    line_type = _text(get("line_type"))
    if not line_type:
        errors.append("line_type is missing")
    raw_id = get("id")
    line_id = (
        str(raw_id) if raw_id not in (None, "") else "k:" + _natural_key(day, row, env_id, res_id)
    )
    return BillingLineItem._make(  # positional: no keyword parsing
        (
            line_id, day, line_type or "UNKNOWN", _text(get("product")) or "", amount,
            res_id, env_id, parse_decimal(get("quantity")), _text(get("unit")),
            _price(get("price")), original, discount, _text(get("description")), attrs,
            "; ".join(errors) or None,
        )
    )  # fmt: skip


class CCloudCostInput:
    """The Confluent Cloud :class:`~chargeback.core.plugin.protocols.CostInput`.

    Args:
        client: the tenant's HTTP client.
        base_url: the management API base URL.
        settings: window and page sizes.
    """

    def __init__(self, client: HttpClient, base_url: str, settings: BillingSettings) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + ENDPOINT
        self._settings = settings

    async def gather(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> AsyncIterator[BillingLineItem]:
        """Stream the billing lines of ``start <= day < end``."""
        for w_start, w_end in windows(start, end, self._settings.days_per_query):
            # A hash of each line, not the line: the engine packs lines away as they
            # arrive, and a window of a large org is ~70k lines (~100 MB as objects).
            seen: dict[tuple[dt.date, str], int] = {}
            dropped = 0
            params: dict[str, str | int] = {
                "start_date": w_start.isoformat(),
                "end_date": w_end.isoformat(),
                "page_size": self._settings.page_size,
            }
            async for page in self._client.paginate(self._url, endpoint=ENDPOINT, params=params):
                for n, row in enumerate(page, 1):
                    if n % _ROWS_PER_YIELD == 0:
                        await asyncio.sleep(0)  # a 10k-row page must not stall the loop
                    line = parse_cost_row(row)
                    if line is None:
                        continue
                    if not start <= line.date < end or not w_start <= line.date < w_end:
                        dropped += 1
                        continue
                    line = self._dedupe(line, row, seen)
                    if line is not None:
                        if line.error:
                            _log.warning(
                                "billing row malformed", tenant=tenant_id, line_id=line.line_id,
                                date=line.date.isoformat(), error=line.error,
                            )  # fmt: skip
                        yield line
            if dropped:
                _log.info(
                    "billing rows outside window dropped", tenant=tenant_id, count=dropped,
                    start=w_start.isoformat(), end=w_end.isoformat(),
                )  # fmt: skip

    @staticmethod
    def _dedupe(
        line: BillingLineItem,
        row: Mapping[str, Any],
        seen: dict[tuple[dt.date, str], int],
    ) -> BillingLineItem | None:
        key = (line.date, line.line_id)
        previous = seen.get(key)
        this = _line_hash(line)
        if previous is None:
            seen[key] = this
            return line
        if line.line_id.startswith("k:"):
            n = 2
            while (line.date, f"{line.line_id}#{n}") in seen:
                n += 1
            new_id = f"{line.line_id}#{n}"
        elif previous == this:  # equal fields (a 64-bit hash of them)
            _log.warning("billing duplicate row dropped", line_id=line.line_id)
            return None
        else:
            new_id = f"{line.line_id}#{_digest(row)}"
            if (line.date, new_id) in seen:
                _log.warning("billing duplicate row dropped", line_id=line.line_id)
                return None
            _log.warning("billing id reused by a different row", line_id=line.line_id)
        renamed = _with_id(line, new_id)
        seen[(line.date, new_id)] = _line_hash(renamed)
        return renamed


def _line_hash(line: BillingLineItem) -> int:
    """Hash every field of a line (equal lines hash equal; attributes in key order)."""
    return hash(
        (
            line.line_id, line.date, line.product_type, line.product_category, line.amount,
            line.resource_id, line.env_id, line.quantity, line.unit, line.unit_price,
            line.original_amount, line.discount_amount, line.description,
            tuple(sorted(line.attributes.items())), line.error,
        )
    )  # fmt: skip


def _with_id(line: BillingLineItem, line_id: str) -> BillingLineItem:
    return line._replace(line_id=line_id)
