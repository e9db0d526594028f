"""The storage backend protocol and the records it reads and writes (DESIGN §7).

Nothing outside :mod:`chargeback.core.storage` writes SQL. The engine, the emitters,
reconciliation and the CLI talk to a :class:`StorageBackend`; the embedded default is
SQLite (:mod:`chargeback.core.storage.sqlite`), and a server database can replace it
by implementing this protocol.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from chargeback.core.ledger.records import UsageCell, UsageEntry
from chargeback.core.models import BillingLineItem, ChargebackRow, Identity, Resource
from chargeback.core.plugin.protocols import PluginRows, StorageModule

__all__ = [
    "CostTotal",
    "DateState",
    "InventoryDelta",
    "PeriodSync",
    "ReconcileRow",
    "RerunRequest",
    "Restatement",
    "RunRecord",
    "StorageBackend",
]


@dataclass(frozen=True, slots=True)
class DateState:
    """What was last calculated for one tenant-date (DESIGN §4).

    Attributes:
        day: the date.
        billing_fingerprint: digest of the billing lines it was calculated from.
        settings_fingerprint: digest of the allocation settings it was calculated with.
        inventory_fingerprint: digest of the inventory it was calculated with.
        calc_seq: increases by one on every commit of this date; emitters compare it.
        calculated_at: when it was committed.
        line_count: billing lines of the date.
        row_count: chargeback rows of the date.
        billed_total: sum of the lines' amounts (minor units).
        allocated_total: sum of the rows' amounts (minor units).
        unallocated_total: the part of ``allocated_total`` charged to UNALLOCATED.
    """

    day: dt.date
    billing_fingerprint: str
    settings_fingerprint: str
    inventory_fingerprint: str
    calc_seq: int
    calculated_at: dt.datetime
    line_count: int
    row_count: int
    billed_total: int
    allocated_total: int
    unallocated_total: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one tenant (status ``running``, ``success``, ``failed``, ``cancelled``)."""

    run_id: str
    tenant_id: str
    trigger: str
    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    counts: Mapping[str, int]
    error: str | None


@dataclass(frozen=True, slots=True)
class RerunRequest:
    """An operator's request to recalculate ``start <= day <= end`` (inclusive)."""

    request_id: int
    tenant_id: str
    start: dt.date
    end: dt.date
    requested_at: dt.datetime


@dataclass(frozen=True, slots=True)
class InventoryDelta:
    """What one inventory sync changed.

    Attributes:
        created: ids seen for the first time.
        deleted: ids no longer listed, now marked deleted.
        deletion_suppressed: ids that would have been deleted but were kept because
            the guard judged the listing unreliable.
        fingerprint: digest of the tenant's whole inventory after the sync.
    """

    created: int
    deleted: int
    deletion_suppressed: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    """Billed vs allocated for one tenant, date and product type (minor units)."""

    day: dt.date
    product_type: str
    billed: int
    allocated: int
    lines: int
    refused: int = 0
    """Lines whose billed amount was refused (their ``error`` starts with
    :data:`~chargeback.core.models.REFUSED`): stored with amount 0, so ``billed`` leaves
    out what they reported."""

    @property
    def difference(self) -> int:
        """``allocated - billed``; zero is the product's promise."""
        return self.allocated - self.billed


@dataclass(frozen=True, slots=True)
class CostTotal:
    """A sum of chargeback amounts for one group (the Prometheus emitter's input)."""

    tenant_id: str
    identity_id: str
    product_type: str
    cost_type: str
    env_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Restatement:
    """A closed day whose bill changed (DESIGN §16): it opened again.

    Attributes:
        day: the date.
        detected_at: when the sync that saw it ran.
        billed_before: the day's billed total when it closed (minor units).
        billed_after: its billed total now.
        fingerprint_before: the billing fingerprint it closed with.
        fingerprint_after: the billing fingerprint now.
    """

    day: dt.date
    detected_at: dt.datetime
    billed_before: int
    billed_after: int
    fingerprint_before: str
    fingerprint_after: str


@dataclass(frozen=True, slots=True)
class PeriodSync:
    """What one period sync changed: days that closed, and closed days reopened."""

    closed: tuple[dt.date, ...] = ()
    reopened: tuple[Restatement, ...] = ()

    @property
    def changed(self) -> list[dt.date]:
        """Every day whose status changed, ascending."""
        return sorted({*self.closed, *(r.day for r in self.reopened)})


class StorageBackend(Protocol):
    """Protocol: the database behind the engine.

    All methods are coroutines; each write method is one transaction that either
    commits whole or not at all.
    """

    async def open(self) -> None:
        """Open the database and apply the core migrations. Idempotent."""
        ...

    async def close(self) -> None:
        """Close the database. Idempotent."""
        ...

    async def register_modules(self, modules: Sequence[StorageModule]) -> None:
        """Apply the migrations of plugin storage modules not yet applied."""
        ...

    # -- runs ---------------------------------------------------------------------
    async def start_run(
        self, tenant_id: str, run_id: str, trigger: str, started_at: dt.datetime
    ) -> None:
        """Record a run as started."""
        ...

    async def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        finished_at: dt.datetime,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        """Record a run's outcome."""
        ...

    async def list_runs(self, tenant_id: str, limit: int = 20) -> list[RunRecord]:
        """Return the newest runs of a tenant, newest first."""
        ...

    async def interrupt_stale_runs(self, finished_at: dt.datetime) -> int:
        """Mark every run still ``running`` whose owner is gone as ``interrupted``.

        Returns how many. ``start_run`` records the calling process as the run's owner
        (:func:`~chargeback.core.storage.owner.current_owner`); a run whose owner
        :func:`~chargeback.core.storage.owner.owner_is_gone` was killed. Called at the
        start of the daemon, ``once`` and ``rerun --now``; a live process's run stays.
        """
        ...

    # -- date state and reruns ------------------------------------------------------
    async def get_date_states(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, DateState]:
        """Return the stored state of every calculated date with ``start <= day < end``."""
        ...

    async def request_rerun(
        self, tenant_id: str, start: dt.date, end: dt.date, requested_at: dt.datetime
    ) -> int:
        """Record an operator's rerun request (inclusive range); return its id."""
        ...

    async def pending_reruns(self, tenant_id: str) -> list[RerunRequest]:
        """Return the rerun requests not yet completed."""
        ...

    async def complete_reruns(self, request_ids: Sequence[int], completed_at: dt.datetime) -> None:
        """Mark rerun requests as done."""
        ...

    # -- inventory --------------------------------------------------------------------
    async def sync_inventory(
        self,
        tenant_id: str,
        resources: Sequence[Resource],
        identities: Sequence[Identity],
        seen_at: dt.datetime,
        *,
        deletable_types: frozenset[str] | None = None,
    ) -> InventoryDelta:
        """Upsert what was listed; mark what is no longer listed as deleted at ``seen_at``.

        Only resource and identity types in ``deletable_types`` are marked deleted
        (``None``: all); the engine leaves out types whose listing failed or looks
        unreliable, so an empty or failed listing never mass-deletes.
        """
        ...

    async def load_inventory(self, tenant_id: str) -> tuple[list[Resource], list[Identity]]:
        """Return every resource and identity ever seen, deleted ones with ``deleted_at``."""
        ...

    # -- the date commit ----------------------------------------------------------------
    async def commit_date(
        self,
        tenant_id: str,
        day: dt.date,
        *,
        lines: Sequence[BillingLineItem],
        rows: Sequence[ChargebackRow],
        plugin_rows: Sequence[PluginRows],
        billing_fingerprint: str,
        settings_fingerprint: str,
        inventory_fingerprint: str,
        calculated_at: dt.datetime,
    ) -> DateState:
        """Replace the date's lines, rows and plugin rows and update its state, atomically.

        Returns the new state (``calc_seq`` incremented).
        """
        ...

    # -- emissions ------------------------------------------------------------------------
    async def pending_emissions(self, tenant_id: str, emitter: str) -> list[tuple[dt.date, int]]:
        """Return ``(date, calc_seq)`` of calculated dates not yet emitted at their ``calc_seq``."""
        ...

    async def record_emission(
        self,
        tenant_id: str,
        emitter: str,
        day: dt.date,
        calc_seq: int,
        *,
        emitted_at: dt.datetime,
        error: str | None = None,
    ) -> None:
        """Record an emission attempt; ``error=None`` means it succeeded."""
        ...

    # -- reads ----------------------------------------------------------------------------
    async def read_rows(self, tenant_id: str, day: dt.date) -> list[ChargebackRow]:
        """Return the chargeback rows of one tenant-date, in a stable order."""
        ...

    async def read_lines(self, tenant_id: str, day: dt.date) -> list[BillingLineItem]:
        """Return the billing lines one tenant-date was last calculated from, by ``line_id``."""
        ...

    async def reconcile(self, tenant_id: str, start: dt.date, end: dt.date) -> list[ReconcileRow]:
        """Return billed vs allocated per date and product type, ``start <= day < end``."""
        ...

    async def cost_totals(
        self, tenant_id: str | None, start: dt.date, end: dt.date
    ) -> list[CostTotal]:
        """Sum chargeback amounts per tenant, identity, product type, cost type and env.

        For days ``start <= day < end``; ``tenant_id=None`` means every tenant.
        """
        ...

    # -- periods (DESIGN §16) ------------------------------------------------------------
    async def sync_periods(self, tenant_id: str, open_from: dt.date, at: dt.datetime) -> PeriodSync:
        """Bring the open/closed state of every calculated day of a tenant up to date.

        One transaction: a day never seen gets ``open`` (``day >= open_from``) or
        ``closed``; a closed day whose billing fingerprint differs from the one it closed
        with reopens (on ``at``'s date) and a :class:`Restatement` is recorded; an open day
        before ``open_from`` closes, unless a restatement reopened it on or after
        ``open_from`` (it then stays open for the same settle period).
        """
        ...

    async def period_statuses(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, str]:
        """Return ``open`` / ``closed`` of each synced day with ``start <= day < end``."""
        ...

    async def restatement_counts(self) -> dict[str, int]:
        """Return how many restatements each tenant had, ever."""
        ...

    async def list_restatements(self, tenant_id: str, limit: int = 100) -> list[Restatement]:
        """Return a tenant's newest restatements, newest first."""
        ...

    async def latest_calculated_date(self, tenant_id: str) -> dt.date | None:
        """Return the newest calculated date of a tenant, if any."""
        ...

    async def tenants(self) -> list[str]:
        """Return every tenant with stored state."""
        ...

    # -- the usage ledger (DESIGN §13) -------------------------------------------------
    async def write_usage(self, tenant_id: str, entries: Sequence[UsageEntry]) -> None:
        """Store fetched usage cells (replacing those cells if stored), in one transaction.

        An entry with no values stores the cell as fetched-and-empty.
        """
        ...

    async def read_usage(
        self,
        tenant_id: str,
        start: dt.date,
        end: dt.date,
        *,
        queries: Collection[str] | None = None,
        resource_ids: Collection[str] | None = None,
    ) -> list[UsageEntry]:
        """Return the stored cells with ``start <= day < end`` (of those queries and
        resources, if given), ordered by date, query and resource."""
        ...

    async def missing_usage(self, tenant_id: str, wanted: Collection[UsageCell]) -> set[UsageCell]:
        """Return the cells of ``wanted`` the ledger does not hold."""
        ...

    async def billed_resources(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> set[tuple[str, str]]:
        """Return the ``(product_type, resource_id)`` pairs of the stored billing lines
        with ``start <= day < end`` (what usage collection asks for)."""
        ...

    async def unavailable_lines(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[tuple[dt.date, str], int]:
        """Count the lines split by ``usage_unavailable``, per date and product type."""
        ...
