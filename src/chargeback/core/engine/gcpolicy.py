"""The cyclic garbage collector's policy while dates are allocated and written.

Allocating one date of a large organization creates ~100k long-lived containers
(chargeback rows, allocation parts), and each of them counts towards the collector's
thresholds: a 14-day large backfill ran ~3,900 collections, 21 of them full ones
traversing every live object (the inventory, the date's rows, the spools), for
~12 % of its CPU time, and every collection pauses every thread, the HTTP server's
included. Rows and parts are tuples of text and numbers: they form no cycles and
reference counting frees them the moment their date is committed.

Fetching is the same story: a 10k-row billing page decodes into ~30k dicts that
live until the page is parsed, and collections triggered by them traverse them again
and again (a 90-day large backfill spent ~2.7 s there, 18 full collections). Pages
and rows form no cycles either (the HTTP client breaks httpx's response/stream
cycle), so the billing download and the usage fetch run under the same policy.

So while dates are worked on, automatic collection is off. The date loop is one
block and collects the young generations (everything the dates created that is still
alive) every few dates with :func:`collect_young`, and once more on leaving; so
cycles a date made (an allocator's exception and its traceback, asyncio callbacks)
are still reclaimed within seconds. A collection after every date cost ~25 ms each
(every row of the dates in flight is traversed: named tuples are never untracked).
When no date is being worked on in the process, automatic collection is back to what
it was. Nesting (several tenants running at once) is counted; the policy is
process-wide because the collector is.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collect_young", "young_collections_only"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def young_collections_only() -> Iterator[None]:
    """Pause automatic collection inside the block; collect the young generations after."""
    global _depth, _was_enabled  # noqa: PLW0603  (one process-wide collector)
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            last = _depth == 0
            if last and _was_enabled:
                gc.enable()
        gc.collect(1)


def collect_young() -> None:
    """Collect the young generations now (inside a block, every few dates).

    Each collection traverses every row still alive (the dates being committed:
    named tuples are never untracked), ~25 ms a date for a large organization, and
    a date makes hardly any cycles; so the date loop stays in one block and collects
    every few dates, not after each.
    """
    gc.collect(1)
