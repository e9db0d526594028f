"""timeit of the per-row allocation costs named in finding F1, current vs proposed.

A 23-part line (the large org's average): the engine's ``_checked`` vs a one-pass fast
path that falls back to it, ``ChargebackRow(...)`` vs ``tuple.__new__``, and
``Allocation(...)`` vs ``tuple.__new__``. Prints microseconds per part/row.

    .venv/bin/python -m bench.alloc_micro
"""

from __future__ import annotations

import datetime as dt
import json
import timeit
from typing import Any

from chargeback.core.engine.conserve import checked as _checked
from chargeback.core.models import (
    Allocation,
    AllocationResult,
    BillingLineItem,
    ChargebackRow,
    CostType,
)
from chargeback.core.money import split_even

PARTS = 23
LINE = BillingLineItem(
    line_id="l1", date=dt.date(2026, 1, 1), product_type="KAFKA_NETWORK_READ",
    product_category="KAFKA", amount=123_456_789, resource_id="lkc-1", env_id="env-1",
)  # fmt: skip
IDS = [f"sa-{i:05d}" for i in range(PARTS)]
AMOUNTS = split_even(LINE.amount, PARTS)
ALLOCS = [Allocation(i, a, CostType.USAGE, "usage") for i, a in zip(IDS, AMOUNTS, strict=True)]
RESULT = AllocationResult(ALLOCS)
_new = tuple.__new__


def fast_checked(line: BillingLineItem, result: AllocationResult) -> Any:
    """One pass; merge (the current code) only when a key repeats or the sum is off."""
    parts = result.allocations
    total = 0
    keys = set()
    for p in parts:
        if type(p) is not Allocation or type(p[1]) is not int or type(p[0]) is not str or not p[0]:
            return _checked(line, result)
        total += p[1]
        keys.add((p[0], p[2], p[3], p[4]))
    if total != line.amount or len(keys) != len(parts):
        return _checked(line, result)
    return parts, None


def rows_now() -> list[ChargebackRow]:
    """ChargebackRow through its generated ``__new__``."""
    ln = LINE
    return [
        ChargebackRow("t", ln.date, ln.line_id, i, ln.product_type, ln.product_category,
                      ln.resource_id, ln.env_id, c, r, a, w)
        for i, a, c, r, w in ALLOCS
    ]  # fmt: skip


def rows_fast() -> list[ChargebackRow]:
    """ChargebackRow through ``tuple.__new__``."""
    ln = LINE
    return [
        _new(ChargebackRow, ("t", ln.date, ln.line_id, i, ln.product_type, ln.product_category,
                             ln.resource_id, ln.env_id, c, r, a, w))
        for i, a, c, r, w in ALLOCS
    ]  # fmt: skip


def per_item_us(fn: Any, number: int = 20_000) -> float:
    """Microseconds per part of one call of ``fn`` (best of 3)."""
    return min(timeit.repeat(fn, number=number, repeat=3)) / number / PARTS * 1e6


def main() -> None:
    """Time each pair and print JSON."""
    usage = CostType.USAGE
    out = {
        "checked_us_per_part": per_item_us(lambda: _checked(LINE, RESULT)),
        "checked_fast_us_per_part": per_item_us(lambda: fast_checked(LINE, RESULT)),
        "chargeback_row_us": per_item_us(rows_now),
        "chargeback_row_tuple_new_us": per_item_us(rows_fast),
        "allocation_us": per_item_us(
            lambda: [Allocation(i, a, usage, "usage") for i, a in zip(IDS, AMOUNTS, strict=True)]
        ),
        "allocation_tuple_new_us": per_item_us(
            lambda: [
                _new(Allocation, (i, a, usage, "usage", None))
                for i, a in zip(IDS, AMOUNTS, strict=True)
            ]
        ),
    }
    print(json.dumps({k: round(v, 3) for k, v in out.items()}))


if __name__ == "__main__":
    main()
