"""The process's garbage-collector policy, set once at start by the ``chargeback`` program.

The collector is process-wide, so its settings belong to the process, not to the
engine's loop. Two switches, both measured (``bench/README.md``, "GC policy"):

- :func:`configure` raises the young generation's threshold (:data:`THRESHOLDS`).
  A large organisation's date creates ~100k long-lived containers (rows, allocation
  parts, decoded billing pages); at the default threshold of 700 each of them
  triggers a share of young collections that traverse the date's rows again and
  again. The rows are tuples of text and numbers that form no cycles and are freed
  by reference counting when their date is committed, so collecting less often loses
  nothing; cycles (an exception's traceback, asyncio callbacks) are still collected.
- :func:`freeze_start_up` moves everything alive after start-up (modules, settings,
  plugins, the daemon's objects) to the permanent generation with :func:`gc.freeze`,
  so no collection traverses it again.

Only the ``chargeback`` program calls :func:`configure` (``cli.main()`` without
arguments); a daemon embedded in another process (the test suite, a notebook) leaves
that process's collector alone, because :func:`freeze_start_up` does nothing unless
:func:`configure` ran.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "configure", "freeze_start_up"]

THRESHOLDS = (50_000, 20, 10)
"""``gc.set_threshold`` values: young, middle, old (the defaults are 700, 10, 10)."""

_configured = False


def configure(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """Set the collector's thresholds for this process (call once, at start)."""
    global _configured  # noqa: PLW0603  (one process-wide collector)
    gc.set_threshold(*thresholds)
    _configured = True


def freeze_start_up() -> bool:
    """After start-up: collect once, then freeze what is alive; ``True`` if it did.

    Does nothing (``False``) unless :func:`configure` ran in this process.
    """
    if not _configured:
        return False
    gc.collect()
    gc.freeze()
    return True
