"""The allocated charges of one origin charge, as rows of cells (FOCUS 1.3 split allocation).

A row starts as a copy of its origin's cells (dimensions and non-aggregatable metrics
repeat the origin); the part's own cells are set by position. What depends only on the
identity (its id, type, name, tags) or only on the rule (method id, cost type, reason)
is built once per export and reused: a large organization's day is ~55k parts of a few
thousand identities and a dozen rules.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal

from chargeback.core.emitters.focus.split import (
    FINE,
    fine_of_decimal,
    format_fine,
    format_nanos,
    split_many,
)
from chargeback.core.jsontext import compact, compact_sorted
from chargeback.core.models import UNALLOCATED, BillingLineItem, ChargebackRow, Identity

__all__ = ["TAG_PREFIX", "PartWriter", "csv_cell", "method_id"]

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def csv_cell(text: str) -> str:
    """``text`` as one CSV field, quoted as :mod:`csv`'s ``QUOTE_MINIMAL`` quotes it."""
    if _NEEDS_QUOTES.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def _plain(text: str) -> str:
    return text


TAG_PREFIX = "chargeback/"
"""The prefix of every tag key chargeback defines (FOCUS: provider-defined keys are prefixed)."""
_NANOS_TO_FINE = FINE // 10**9
# The parts of an even split share their values: formatted once, looked up after.
_fine = functools.lru_cache(maxsize=1 << 16)(format_fine)
_nanos = functools.lru_cache(maxsize=1 << 16)(format_nanos)
_COSTS = ("BilledCost", "EffectiveCost", "ContractedCost")
_QUANTITIES = ("PricingQuantity", "ConsumedQuantity")
_IDENTITY = (
    "x_IdentityId", "x_IdentityType", "AllocatedResourceId", "AllocatedResourceName",
    "AllocatedTags",
)  # fmt: skip
_METHOD = ("AllocatedMethodId", "x_CostType", "x_AllocationRule", "x_AllocationReason")
_DETAILS = '{"Elements":[{"AllocatedRatio":'
_DETAILS_QUOTED = '"' + _DETAILS.replace('"', '""')


def method_id(part: ChargebackRow) -> str:
    """``AllocatedMethodId``: the allocation rule and the cost type, ``<rule>/<cost type>``."""
    return f"{part.rule}/{part.cost_type}"


def _identity_values(identity_id: str, identity: Identity | None, allocated: bool) -> list[str]:
    """The identity's cells, in :data:`_IDENTITY` order (Allocated* only in 1.3)."""
    kind = identity.identity_type if identity is not None else "unknown"
    if identity_id == UNALLOCATED:
        return [identity_id, "", "", "", ""]  # the unallocated portion: no AllocatedResourceId
    if not allocated:
        return [identity_id, kind, "", "", ""]
    name = identity.display_name if identity is not None and identity.display_name else None
    tags = {f"{TAG_PREFIX}identity_type": kind}
    if identity is not None and identity.owner_id:
        tags[f"{TAG_PREFIX}owner"] = identity.owner_id
    return [identity_id, kind, identity_id, name or identity_id, compact_sorted(tags)]


class PartWriter:
    """Turns an origin's cells and its parts into rows (cells in ``columns`` order).

    Args:
        columns: the dataset's columns.
        identities: identity id -> identity, for names and types.
        allocated: whether the version has the split allocation columns (1.3).
        quoted: give every cell as a CSV field (:func:`csv_cell`), so a row is written as
            ``",".join(row)``: ~3x faster than :mod:`csv`'s writer over ~55 columns, since
            the text cells are quoted once per origin, identity or rule, not once per row.
    """

    def __init__(
        self,
        columns: Sequence[str],
        identities: Mapping[str, Identity],
        *,
        allocated: bool,
        quoted: bool = False,
    ) -> None:
        self._q: Callable[[str], str] = csv_cell if quoted else _plain
        where = {name: i for i, name in enumerate(columns)}
        self._width = len(columns)
        self._where = where
        self._costs = [where[n] for n in _COSTS]
        self._list_cost = where["ListCost"]
        self._quantities = [where[n] for n in _QUANTITIES]
        self._discount = where["x_DiscountAmount"]
        self._identity_at = [where.get(n) for n in _IDENTITY]
        self._method_at = [where.get(n) for n in _METHOD]
        self._details_at = where.get("AllocatedMethodDetails")
        self._identities = identities
        self._allocated = allocated
        self._by_identity: dict[str, list[tuple[int, str]]] = {}
        self._by_method: dict[tuple[str, str, str | None], tuple[list[tuple[int, str]], str]] = {}

    def base(self, cells: Mapping[str, str]) -> list[str]:
        """An origin's cells as a row (``""`` where the origin has no value)."""
        q = self._q
        return [q(cells.get(name, "")) for name in self._where]

    def _identity(self, identity_id: str) -> list[tuple[int, str]]:
        found = self._by_identity.get(identity_id)
        if found is None:
            values = _identity_values(
                identity_id, self._identities.get(identity_id), self._allocated
            )
            at, q = self._identity_at, self._q
            found = [(i, q(v)) for i, v in zip(at, values, strict=True) if i is not None]
            self._by_identity[identity_id] = found
        return found

    def _method(self, part: ChargebackRow) -> tuple[list[tuple[int, str]], str]:
        key = (part.rule, part.cost_type, part.reason)
        found = self._by_method.get(key)
        if found is None:
            values = [method_id(part), part.cost_type, part.rule, part.reason or ""]
            at = self._method_at
            cells = [(i, self._q(v)) for i, v in zip(at, values, strict=True) if i is not None]
            reason = f',"x_Reason":{compact(part.reason)}' if part.reason else ""
            # The ratio goes between the two halves as its exact decimal text (a JSON number).
            suffix = f'}}],"x_CostType":{compact(part.cost_type)}{reason}}}'
            if self._q is csv_cell:  # the details always hold quotes: quoted field
                suffix = suffix.replace('"', '""') + '"'
            found = self._by_method[key] = (cells, suffix)
        return found

    def rows(
        self,
        line: BillingLineItem,
        parts: Sequence[ChargebackRow],
        base: list[str],
        *,
        priced: bool,
    ) -> Iterator[list[str]]:
        """Yield the rows of ``line``'s parts; every metric is split exactly over them."""
        amounts = [p.amount for p in parts]
        list_total = line.original_amount if line.original_amount is not None else line.amount
        has_quantity = priced and line.quantity is not None
        has_discount = line.discount_amount is not None
        totals = [list_total * _NANOS_TO_FINE]
        if has_quantity:
            totals.append(fine_of_decimal(line.quantity or Decimal(0)))
        if has_discount:
            totals.append((line.discount_amount or 0) * _NANOS_TO_FINE)
        if self._details_at is not None:
            totals.append(FINE)
        splits = iter(split_many(totals, amounts))
        list_parts = next(splits)
        quantities = next(splits) if has_quantity else None
        discounts = next(splits) if has_discount else None
        ratios = next(splits) if self._details_at is not None else None
        prefix = _DETAILS_QUOTED if self._q is csv_cell else _DETAILS
        c1, c2, c3 = self._costs
        q1, q2 = self._quantities
        for i, part in enumerate(parts):
            row = base.copy()
            row[c1] = row[c2] = row[c3] = _nanos(part.amount)
            row[self._list_cost] = _fine(list_parts[i])
            if quantities is not None:
                row[q1] = row[q2] = _fine(quantities[i])
            if discounts is not None:
                row[self._discount] = _fine(discounts[i])
            for at, value in self._identity(part.identity_id):
                row[at] = value
            cells, suffix = self._method(part)
            for at, value in cells:
                row[at] = value
            if ratios is not None and self._details_at is not None:
                row[self._details_at] = prefix + _fine(ratios[i]) + suffix
            yield row
