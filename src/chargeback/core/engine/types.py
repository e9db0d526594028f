"""The engine's inputs and outputs: what the daemon hands it and gets back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from chargeback.core.plugin.protocols import Emitter

__all__ = ["NamedEmitter", "RunStatus", "RunSummary", "TenantConfig"]


@dataclass(frozen=True, slots=True)
class TenantConfig:
    """One tenant as the engine sees it (built from the validated settings).

    Attributes:
        name: the tenant id, unique in the process.
        ecosystem: the plugin name, e.g. ``"confluent_cloud"``.
        plugin_settings: the raw mapping handed to ``plugin.initialize``; the engine
            itself reads only ``allocator_overrides`` and ``identity_resolver_overrides``.
            Left out of ``repr`` (it holds the tenant's raw secrets).
        lookback_days: oldest day calculated is ``today - lookback_days``.
        cutoff_days: newest day calculated is ``today - cutoff_days``.
        recalc_days: days before the cutoff recalculated when the inventory changed.
        run_timeout_s: bound on one run.
        deletion_guard_ratio: a listing that would delete more than this fraction of
            the known items of a type (or returns nothing) deletes nothing.
    """

    name: str
    ecosystem: str
    plugin_settings: Mapping[str, Any] = field(default_factory=dict, repr=False)
    lookback_days: int = 30
    cutoff_days: int = 3
    recalc_days: int = 3
    run_timeout_s: float = 3600.0
    deletion_guard_ratio: float = 0.5


class NamedEmitter(NamedTuple):
    """An emitter instance with the name its emissions are tracked under."""

    name: str
    emitter: Emitter


class RunStatus(StrEnum):
    """How a run ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class RunSummary:
    """What one tenant run did; stored as the run's row and exported as metrics."""

    run_id: str
    tenant_id: str
    trigger: str
    started_at: dt.datetime
    status: RunStatus = RunStatus.SUCCESS
    finished_at: dt.datetime | None = None
    dates_calculated: int = 0
    dates_skipped: int = 0
    lines_read: int = 0
    rows_written: int = 0
    unallocated: int = 0
    emitted: int = 0
    emit_failures: int = 0
    usage_unavailable_lines: int = 0
    """Lines split by ``usage_unavailable``: their usage was gone at the source and
    never stored (DESIGN §13)."""
    refused_lines: int = 0
    """Billing lines of the committed dates whose amount was refused (out of range, or
    nothing to derive it from): kept with the reported amount and the reason, at 0."""
    unattributed: int = 0
    """Minor units of the committed dates charged to no known, real identity: UNALLOCATED,
    sentinel identities and principals not in the inventory (see
    :mod:`~chargeback.core.unattributed`)."""
    scrape_gap_lines: int = 0
    """Lines of the committed dates whose quantity had no samples on their day (error
    ``scrape_gap: ...``): stored at 0 with the reason, never billed."""
    error: str | None = None
    storage_failed: bool = False
    """The run failed because the database did (locked, read-only, full): not ready."""

    def counts(self) -> dict[str, int]:
        """Return the integer counters, for storage and logs."""
        return {
            "dates_calculated": self.dates_calculated,
            "dates_skipped": self.dates_skipped,
            "lines_read": self.lines_read,
            "rows_written": self.rows_written,
            "unallocated": self.unallocated,
            "emitted": self.emitted,
            "emit_failures": self.emit_failures,
            "usage_unavailable_lines": self.usage_unavailable_lines,
            "refused_lines": self.refused_lines,
            "unattributed": self.unattributed,
            "scrape_gap_lines": self.scrape_gap_lines,
        }
