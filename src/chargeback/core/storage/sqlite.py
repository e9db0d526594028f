"""The embedded SQLite backend (DESIGN §7): aiosqlite, WAL, one file.

Two connections: a *writer*, whose transactions are serialised by an asyncio lock
(several tenants share one backend), and a *reader*, which sees the last committed
state through WAL snapshots and never waits for a long commit. An in-memory database
(``":memory:"``) uses the writer for both. Large date commits are written by a child
process on a third connection (:mod:`~chargeback.core.storage._writer`), under the
same write lock, with the same transaction.

Durability: WAL with ``synchronous=NORMAL``, every tenant-date one transaction (why
that is safe: :mod:`~chargeback.core.storage._connection`).

Errors from sqlite3/aiosqlite are translated into :class:`~chargeback.errors.StorageError`
here, at the boundary, with what to do about them (locked, read-only, full, corrupt).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

import aiosqlite
import structlog

from chargeback.core.models import BillingLineItem, ChargebackRow, Identity, Resource
from chargeback.core.plugin.protocols import PluginRows, StorageModule
from chargeback.core.storage import _commit, _inventory, _queries
from chargeback.core.storage._connection import check_read_only_schema, connect
from chargeback.core.storage._dialect import SQLITE, Dialect
from chargeback.core.storage._ledger import SQLiteLedger
from chargeback.core.storage._lines import LineReads
from chargeback.core.storage._periods import PeriodStore
from chargeback.core.storage._runs import RunStore
from chargeback.core.storage._util import (
    datetime_to_text,
    rollback_quietly,
    run_in_connection,
    translate_error,
)
from chargeback.core.storage._writer import CommitWriter, WriterDiedError
from chargeback.core.storage.backend import (
    CostTotal,
    DateState,
    InventoryDelta,
    ReconcileRow,
    RerunRequest,
    RunRecord,
)
from chargeback.core.storage.migrations import (
    CORE_MIGRATIONS,
    CORE_NAMESPACE,
    apply_migrations,
    ensure_migrations_table,
)
from chargeback.errors import StorageError

__all__ = ["SQLiteBackend"]

log = structlog.get_logger(__name__)

DEFAULT_WRITER_PROCESS_MIN_ROWS = 20_000
"""Commits this large go to the writer process: a large organisation's date (~55k rows)
does, a small one's (a few thousand) stays in-thread, where the child's start-up
(~0.1 s, once) and pickling would cost more than the overlap wins."""

_DB_ERRORS = (sqlite3.Error, OverflowError, ValueError)
"""What a database call can raise: sqlite3 errors, ints beyond 64 bits, a closed connection."""


class SQLiteBackend(SQLiteLedger, LineReads, PeriodStore, RunStore):
    """The :class:`~chargeback.core.storage.backend.StorageBackend` on one SQLite file.

    Args:
        path: the database file (created if missing; its directory must exist), or
            ``":memory:"`` for a private in-memory database.
        busy_timeout_s: how long a write waits for another process's write lock
            before failing with a StorageError.
        read_only: open the file read-only (e.g. for ``chargeback reconcile`` next to
            a running daemon); migrations are not applied, writes fail.
        writer_process_min_rows: date commits of at least this many lines plus rows
            run in a child process (:mod:`~chargeback.core.storage._writer`), so the
            next date's allocation uses the other core meanwhile; ``None`` keeps every
            commit in this process. An in-memory database never uses the child.

    The usage ledger's methods come from :class:`~chargeback.core.storage._ledger.SQLiteLedger`.
    """

    _dialect: ClassVar[Dialect] = SQLITE

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        read_only: bool = False,
        writer_process_min_rows: int | None = DEFAULT_WRITER_PROCESS_MIN_ROWS,
    ) -> None:
        self._path = str(path)
        self._busy_timeout_ms = max(0, int(busy_timeout_s * 1000))
        self._read_only = read_only
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._namespaces_done: set[str] = set()
        self._child: CommitWriter | None = None
        self._child_min_rows = writer_process_min_rows
        if writer_process_min_rows is not None and self._path != ":memory:" and not read_only:
            self._child = CommitWriter(self._path, busy_timeout_ms=self._busy_timeout_ms)

    def __repr__(self) -> str:
        return f"SQLiteBackend({self._path!r})"

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def writer_pid(self) -> int | None:
        """The pid of the writer child process while one runs (diagnostics, benchmarks)."""
        return None if self._child is None else self._child.pid

    # -- lifecycle ---------------------------------------------------------------------
    async def _connect(self, *, read_only: bool) -> aiosqlite.Connection:
        return await connect(self._path, busy_timeout_ms=self._busy_timeout_ms, read_only=read_only)

    async def open(self) -> None:
        """Open the database and apply the core migrations. Idempotent.

        Raises:
            StorageError: the file cannot be opened or written, is corrupt, or records
                a newer schema than this code knows.
        """
        if self._writer is not None:
            return
        try:
            writer = await self._connect(read_only=self._read_only)
        except _DB_ERRORS as exc:
            raise translate_error(exc, "opening the database", self._path) from exc
        try:
            async with self._lock:
                if self._read_only:
                    await check_read_only_schema(writer, self._path)
                else:
                    await ensure_migrations_table(writer)
                    applied = await apply_migrations(
                        writer, CORE_NAMESPACE, CORE_MIGRATIONS, now=_utcnow()
                    )
                    if applied:
                        log.info("storage migrated", path=self._path, versions=applied)
            reader = writer
            if self._path != ":memory:":
                reader = await self._connect(read_only=True)
        except _DB_ERRORS as exc:
            await writer.close()
            raise translate_error(exc, "opening the database", self._path) from exc
        except BaseException:
            await writer.close()
            raise
        self._writer, self._reader = writer, reader
        log.debug("storage opened", path=self._path, read_only=self._read_only)

    async def close(self) -> None:
        """Close both connections and stop the writer process. Idempotent."""
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if self._child is not None:
            async with self._lock:
                await self._child.close()
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            async with self._lock:
                await writer.close()

    async def __aenter__(self) -> SQLiteBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- transaction helpers -----------------------------------------------------------
    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``), errors translated."""
        async with self._lock:
            conn = self._writable(action)
            try:
                if conn.in_transaction:  # left open by an interrupted earlier write
                    await rollback_quietly(conn)
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except _DB_ERRORS as exc:
                await rollback_quietly(conn)
                raise translate_error(exc, action, self._path) from exc
            except BaseException:
                await rollback_quietly(conn)
                raise

    def _writable(self, action: str) -> aiosqlite.Connection:
        """The writer connection, or a StorageError saying why there is none."""
        conn = self._writer
        if conn is None:
            raise StorageError(f"{action} failed: the storage is not open; call open() first")
        if self._read_only:
            raise StorageError(f"{action} failed: the database {self._path} was opened read-only")
        return conn

    async def _through_writer(
        self,
        action: str,
        size: int,
        encode: Callable[[CommitWriter], bytes],
        work: Callable[..., int],
        *args: object,
    ) -> int:
        """Run one write transaction, ``work(conn, *args)``, under the write lock.

        A write of ``size`` rows or more goes to the writer child as ``encode(child)``,
        encoded before waiting for the lock (a write queued behind the one in flight is
        ready to go the moment it may); a smaller one runs on the writer connection's
        thread. Both return ``work``'s result.

        Raises:
            StorageError: the database failed or the child died (nothing was written).
        """
        child = self._child
        if child is not None and size < (self._child_min_rows or 0):
            child = None
        payload = None if child is None else encode(child)
        async with self._lock:
            conn = self._writable(action)
            try:
                if conn.in_transaction:  # left open by an interrupted earlier write
                    await rollback_quietly(conn)
                if child is not None and payload is not None:
                    return await child.commit(payload)
                return await run_in_connection(conn, work, *args)
            except _DB_ERRORS as exc:
                raise translate_error(exc, action, self._path) from exc
            except WriterDiedError as exc:
                raise StorageError(f"{action} failed: {exc}") from exc

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[aiosqlite.Connection]:
        """A connection for reads, errors translated."""
        conn = self._reader
        if conn is None:
            raise StorageError(f"{action} failed: the storage is not open; call open() first")
        try:
            if conn is self._writer:
                async with self._lock:
                    yield conn
            else:
                yield conn
        except _DB_ERRORS as exc:
            raise translate_error(exc, action, self._path) from exc

    # -- plugin modules ----------------------------------------------------------------
    async def register_modules(self, modules: Sequence[StorageModule]) -> None:
        """Apply each module's migrations not yet applied, in its own namespace.

        Raises:
            StorageError: a namespace is ``"core"``, a migration failed (it was rolled
                back), or the database records a newer version than the module knows.
        """
        for module in modules:
            namespace = module.namespace
            if namespace == CORE_NAMESPACE:
                raise StorageError("a plugin storage module may not use the 'core' namespace")
            action = f"applying the migrations of storage module {namespace!r}"
            async with self._lock:
                conn = self._writer
                if conn is None or self._read_only:
                    raise StorageError(f"{action} failed: the storage is not open for writing")
                try:
                    applied = await apply_migrations(
                        conn, namespace, list(module.migrations()), now=_utcnow()
                    )
                except _DB_ERRORS as exc:
                    raise translate_error(exc, action, self._path) from exc
            if applied:
                log.info("storage module migrated", namespace=namespace, versions=applied)

    # -- runs --------------------------------------------------------------------------
    async def list_runs(self, tenant_id: str, limit: int = 20) -> list[RunRecord]:
        """Return the newest runs of a tenant, newest first."""
        async with self._read("listing runs") as conn:
            return await _queries.list_runs(conn, tenant_id, limit)

    # -- date state and reruns ---------------------------------------------------------
    async def get_date_states(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, DateState]:
        """Return the stored state of every calculated date with ``start <= day < end``."""
        async with self._read("reading date states") as conn:
            return await _queries.date_states(conn, tenant_id, start, end)

    async def pending_reruns(self, tenant_id: str) -> list[RerunRequest]:
        """Return the rerun requests not yet completed, oldest first."""
        async with self._read("reading rerun requests") as conn:
            return await _queries.pending_reruns(conn, tenant_id)

    # -- inventory ---------------------------------------------------------------------
    async def sync_inventory(
        self,
        tenant_id: str,
        resources: Sequence[Resource],
        identities: Sequence[Identity],
        seen_at: dt.datetime,
        *,
        deletable_types: frozenset[str] | None = None,
    ) -> InventoryDelta:
        """Upsert what was listed; mark unlisted items of ``deletable_types`` deleted.

        See :mod:`chargeback.core.storage._inventory` for the fingerprint's contents.
        """
        async with self._write(f"syncing the inventory of tenant {tenant_id!r}") as conn:
            return await _inventory.sync_inventory(
                conn, SQLITE, tenant_id=tenant_id, resources=resources, identities=identities,
                seen_at=seen_at, deletable_types=deletable_types,
            )  # fmt: skip

    async def load_inventory(self, tenant_id: str) -> tuple[list[Resource], list[Identity]]:
        """Return every resource and identity ever seen, deleted ones with ``deleted_at``."""
        async with self._read(f"loading the inventory of tenant {tenant_id!r}") as conn:
            return await _inventory.load_inventory(conn, SQLITE, tenant_id)

    # -- the date commit ---------------------------------------------------------------
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

        One ``BEGIN IMMEDIATE`` transaction deletes the date's billing lines,
        chargeback rows and the rows of every plugin table ever used, inserts the new
        ones with ``executemany`` and upserts ``date_state`` with ``calc_seq + 1``; any
        error rolls all of it back and leaves the previous version in place.

        Raises:
            ValueError: a line, row or plugin row belongs to another tenant or date.
            StorageError: the database failed (nothing was written).
        """
        # Building ~100k parameter tuples is pure CPU work. It runs here, on the loop,
        # between the slices of the next date's allocation: on a thread it would
        # contend with them for the GIL and be slower for both.
        prepared = _commit.prepare_commit(
            tenant_id,
            day,
            lines=lines,
            rows=rows,
            plugin_rows=plugin_rows,
            billing_fingerprint=billing_fingerprint,
            settings_fingerprint=settings_fingerprint,
            inventory_fingerprint=inventory_fingerprint,
            calculated_at=calculated_at,
        )
        action = f"committing tenant {tenant_id!r} date {day}"
        calc_seq = await self._through_writer(
            action, len(lines) + len(rows), lambda child: child.encode(prepared),
            _commit.write_commit, prepared,
        )  # fmt: skip
        return _commit.date_state_of(prepared, calc_seq)

    # -- emissions ---------------------------------------------------------------------
    async def pending_emissions(self, tenant_id: str, emitter: str) -> list[tuple[dt.date, int]]:
        """Return ``(date, calc_seq)`` of dates not successfully emitted at their ``calc_seq``."""
        async with self._read("reading pending emissions") as conn:
            return await _queries.pending_emissions(conn, tenant_id, emitter)

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
        """Record an emission attempt; ``error=None`` means it succeeded.

        Keeps the last attempt (time, ``calc_seq``, error, attempts at that ``calc_seq``)
        and the newest successful ``calc_seq``.

        Raises:
            StorageError: the date was never calculated.
        """
        at = datetime_to_text(emitted_at)
        ok = error is None
        async with self._write(f"recording emission {emitter!r} of {tenant_id!r} {day}") as conn:
            await conn.execute(
                _queries.RECORD_EMISSION,
                {
                    "tenant": tenant_id,
                    "emitter": emitter,
                    "date": day.isoformat(),
                    "seq": calc_seq,
                    "at": at,
                    "error": error,
                    "ok": ok,
                },
            )

    # -- reads -------------------------------------------------------------------------
    async def read_rows(self, tenant_id: str, day: dt.date) -> list[ChargebackRow]:
        """Return the chargeback rows of one tenant-date, in the order they were committed."""
        async with self._read(f"reading the rows of tenant {tenant_id!r} date {day}") as conn:
            return await _queries.read_rows(conn, tenant_id, day)

    async def reconcile(self, tenant_id: str, start: dt.date, end: dt.date) -> list[ReconcileRow]:
        """Return billed vs allocated per date and product type, ``start <= day < end``.

        Set-based: one query groups billing lines and chargeback rows separately and
        joins the sums, so a date with lines but no rows (or rows but no lines) shows
        its whole amount as the difference.
        """
        async with self._read(f"reconciling tenant {tenant_id!r}") as conn:
            return await _queries.reconcile(conn, tenant_id, start, end)

    async def cost_totals(
        self, tenant_id: str | None, start: dt.date, end: dt.date
    ) -> list[CostTotal]:
        """Sum chargeback amounts per tenant, identity, product type, cost type and env.

        For days ``start <= day < end``; ``tenant_id=None`` means every tenant. A row
        without an environment is summed under ``env_id=""``.
        """
        async with self._read("summing cost totals") as conn:
            return await _queries.cost_totals(conn, tenant_id, start, end)

    async def latest_calculated_date(self, tenant_id: str) -> dt.date | None:
        """Return the newest calculated date of a tenant, if any."""
        async with self._read("reading the latest calculated date") as conn:
            return await _queries.latest_calculated_date(conn, tenant_id)

    async def tenants(self) -> list[str]:
        """Return every tenant with stored state (dates, runs, reruns or inventory)."""
        async with self._read("listing tenants") as conn:
            return await _queries.tenants(conn)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
