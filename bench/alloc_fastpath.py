"""A/B of the allocator fast path: does it pay for what a reader must know? (issue 17)

A usage line of the large org's size (23 payers, 70 % usage / 30 % shared, so ~46
parts) is split by the core's ``allocate_usage`` and checked by the engine's
``checked`` (core/engine/conserve.py), in two variants within one process, interleaved:

- **A, fast**: the allocators build ``Allocation`` tuples in C with plain ``str``
  cost types, which ``_checked`` accepts with C-level passes as they are;
- **B, plain**: the allocators build ``Allocation(...)`` with ``CostType`` members,
  which ``_checked`` sends through its general path (``_merged``: part by part);
- **C, str only**: ``Allocation(...)`` through its constructor, but plain ``str``
  cost types (the C-level construction alone removed).

Prints microseconds per part of each round, the medians, and what the difference
comes to for a 90-day large backfill (``--parts``, default 4.7 M rows).

    .venv/bin/python -m bench.alloc_fastpath
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from itertools import repeat
from typing import Any

from chargeback.core.engine.conserve import checked as _checked
from chargeback.core.models import (
    Allocation,
    AllocationContext,
    AllocationParams,
    BillingLineItem,
    CostType,
    Identity,
    IdentitySet,
)
from chargeback.core.rules import allocators
from chargeback.core.rules.allocators import allocate_usage

PAYERS = 23
LINE = BillingLineItem(
    line_id="l1", date=dt.date(2026, 1, 1), product_type="KAFKA_NUM_CKUS",
    product_category="KAFKA", amount=123_456_789, resource_id="lkc-1", env_id="env-1",
)  # fmt: skip
IDS = [f"sa-{i:05d}" for i in range(PAYERS)]
CTX = AllocationContext(
    tenant_id="t",
    line=LINE,
    identities=IdentitySet(Identity(i, "service_account") for i in IDS),
    principal_map={},
    usage={"request_bytes": {i: 1000 + 7 * n for n, i in enumerate(IDS)}},
    params=AllocationParams("x"),
    reason=None,
)
PARAMS = AllocationParams("kafka_capacity_usage_shared", Fraction(7, 10), ("request_bytes",))


def _plain_allocations(rows: Iterator[tuple[Any, ...]]) -> Iterator[Allocation]:
    return (Allocation(*row) for row in rows)


@contextmanager
def plain(*, members: bool = True) -> Iterator[None]:
    """Variant B (``CostType`` members and the generated ``Allocation`` constructor), or
    C with ``members=False`` (the constructor, plain ``str`` cost types)."""
    saved = (allocators._USAGE, allocators._SHARED, allocators._allocations)
    if members:
        allocators._USAGE, allocators._SHARED = CostType.USAGE, CostType.SHARED
    allocators._allocations = _plain_allocations  # type: ignore[assignment]
    try:
        yield
    finally:
        allocators._USAGE, allocators._SHARED, allocators._allocations = saved


def one_line() -> int:
    """Split and check one line; return its number of parts."""
    result = allocate_usage(CTX, PARAMS)
    parts, error, _, _ = _checked(LINE, result)
    assert error is None
    return len(parts)


def per_part_us(fn: Callable[[], int], number: int) -> float:
    """CPU microseconds per part over ``number`` lines."""
    parts = fn()
    c0 = time.process_time()
    for _ in repeat(None, number):
        fn()
    return (time.process_time() - c0) / number / parts * 1e6


def main() -> None:
    """Interleave A and B rounds and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--parts", type=float, default=4.705e6, help="rows of the backfill")
    args = parser.parse_args()
    with plain():
        parts_b = one_line()
    fast, slow, str_only = [], [], []
    for _ in range(args.rounds):
        fast.append(per_part_us(one_line, args.lines))
        with plain():
            slow.append(per_part_us(one_line, args.lines))
        with plain(members=False):
            str_only.append(per_part_us(one_line, args.lines))
    a, b, c = statistics.median(fast), statistics.median(slow), statistics.median(str_only)
    print(json.dumps({
        "parts_per_line": [one_line(), parts_b],
        "fast_us_per_part": [round(x, 3) for x in fast],
        "plain_us_per_part": [round(x, 3) for x in slow],
        "median_fast_us": round(a, 3),
        "median_plain_us": round(b, 3),
        "str_only_us_per_part": [round(x, 3) for x in str_only],
        "median_str_only_us": round(c, 3),
        "backfill_rows": args.parts,
        "plain_minus_fast_s_per_backfill": round((b - a) * args.parts / 1e6, 2),
        "str_only_minus_fast_s_per_backfill": round((c - a) * args.parts / 1e6, 2),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
