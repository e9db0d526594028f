"""The PostgreSQL backend (DESIGN §18): psycopg 3 with its async connection pool.

Why psycopg 3 (not asyncpg): it speaks libpq, so every libpq connection URI, service
file, ``PGPASSWORD``/``PGPASSFILE`` and TLS setting works as operators know them; it has
``COPY FROM STDIN`` for the date commit and a maintained async pool; the tests' fixture
uses it too.

Unlike SQLite there is no single writer: each write is a transaction on a pooled
connection, so several tenants (and several replicas, :mod:`.leases`) commit at once;
a date's replace is still one transaction. Sessions run in UTC; a read-only backend's
sessions are ``default_transaction_read_only``, and its writes are refused before they
reach the server.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import psycopg
import structlog
from psycopg import conninfo
from psycopg_pool import AsyncConnectionPool

from chargeback.core.models import BillingLineItem, ChargebackRow, Identity, Resource
from chargeback.core.plugin.protocols import Migration, PluginRows, StorageModule
from chargeback.core.storage import _commit as shared_commit
from chargeback.core.storage import _inventory
from chargeback.core.storage._dialect import POSTGRES, Dialect
from chargeback.core.storage.backend import (
    CostTotal,
    DateState,
    InventoryDelta,
    ReconcileRow,
    RerunRequest,
)
from chargeback.core.storage.factory import redact_url
from chargeback.core.storage.migrations import CORE_NAMESPACE
from chargeback.core.storage.postgres import _migrate, _queries
from chargeback.core.storage.postgres._commit import Fence, write_commit
from chargeback.core.storage.postgres._errors import DB_ERRORS, translate_error
from chargeback.core.storage.postgres._ledger import PostgresLedger
from chargeback.core.storage.postgres._lines import PostgresLineReads
from chargeback.core.storage.postgres._periods import PostgresPeriodStore
from chargeback.core.storage.postgres._runs import PostgresRuns
from chargeback.core.storage.postgres.schema import (
    CORE_MIGRATIONS,
    LEASE_MIGRATIONS,
    LEASE_NAMESPACE,
    plugin_sql,
)
from chargeback.errors import StorageError

__all__ = ["PostgresBackend"]

log = structlog.get_logger(__name__)

Conn = psycopg.AsyncConnection[tuple[Any, ...]]

_TENANTS = """
SELECT tenant_id FROM (
    SELECT tenant_id FROM date_state UNION SELECT tenant_id FROM runs
    UNION SELECT tenant_id FROM rerun_requests UNION SELECT tenant_id FROM resources
    UNION SELECT tenant_id FROM identities
) AS t ORDER BY tenant_id COLLATE "C"
"""


class PostgresBackend(PostgresLedger, PostgresLineReads, PostgresPeriodStore, PostgresRuns):
    """The :class:`~chargeback.core.storage.backend.StorageBackend` on a PostgreSQL database.

    Args:
        dsn: a libpq connection URI or string; it may hold a password, which is never
            logged nor shown (:attr:`display` is the redacted form).
        read_only: refuse writes and open read-only sessions; migrations are not applied.
        pool_size: the most connections this backend opens at once.
        connect_timeout_s: how long opening a connection may take.
    """

    _dialect: ClassVar[Dialect] = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        read_only: bool = False,
        pool_size: int = 4,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._display = redact_url(dsn)
        try:
            password = conninfo.conninfo_to_dict(dsn).get("password")
        except psycopg.ProgrammingError as exc:
            raise StorageError(f"the PostgreSQL URL {self._display} is malformed") from exc
        self._secret = None if password is None else str(password)
        self._read_only = read_only
        self._pool_size = max(1, pool_size)
        self._connect_timeout = connect_timeout_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._fences: dict[str, Fence] = {}
        self._unfenced: Fence | None = None  # what a tenant without a fence gets

    def __repr__(self) -> str:
        return f"PostgresBackend({self._display!r})"

    @property
    def display(self) -> str:
        """The database's URL without its password."""
        return self._display

    # -- lifecycle ---------------------------------------------------------------------
    async def _configure(self, conn: Conn) -> None:
        await conn.execute("SET TIME ZONE 'UTC'")
        if self._read_only:
            await conn.execute("SET default_transaction_read_only = on")

    def storage_error(self, exc: BaseException, action: str) -> StorageError:
        """``exc`` (a psycopg failure) as a StorageError naming this database, no password."""
        return translate_error(exc, action, self._display, secret=self._secret)

    async def open(self) -> None:
        """Connect, apply the core migrations (unless read-only) and open the pool.

        Raises:
            StorageError: the server cannot be reached or refuses the login, or the
                database records a newer schema than this code knows (read-only: an
                older one, or none).
        """
        if self._pool is not None:
            return
        action = "opening the database"
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=int(self._connect_timeout)
            )
        except DB_ERRORS as exc:
            raise self.storage_error(exc, action) from None
        try:
            async with conn:
                await self._configure(conn)
                if self._read_only:
                    await self._check_read_only_schema(conn)
                else:
                    await _migrate.ensure_migrations_table(conn)
                    await self._apply(conn, CORE_NAMESPACE, CORE_MIGRATIONS)
                    await self._apply(conn, LEASE_NAMESPACE, LEASE_MIGRATIONS)
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                kwargs={"autocommit": True},
                configure=self._configure,
                timeout=self._connect_timeout + 20,
                open=False,
                name="chargeback",
            )
            await pool.open(wait=True, timeout=self._connect_timeout)
        except DB_ERRORS as exc:
            raise self.storage_error(exc, action) from None
        self._pool = pool
        log.debug("storage opened", database=self._display, read_only=self._read_only)

    async def _apply(self, conn: Conn, namespace: str, migrations: Sequence[Migration]) -> None:
        applied = await _migrate.apply_migrations(conn, namespace, migrations, now=_utcnow())
        if applied:
            log.info("storage migrated", database=self._display, namespace=namespace,
                     versions=applied)  # fmt: skip

    async def _check_read_only_schema(self, conn: Conn) -> None:
        if not await _migrate.has_migrations_table(conn):
            raise StorageError(
                f"the database {self._display} has no chargeback schema; run "
                "'chargeback migrate' (or the daemon) against it once to create it"
            )
        known = CORE_MIGRATIONS[-1].version
        current = await _migrate.recorded_version(conn, CORE_NAMESPACE)
        if current != known:
            raise StorageError(
                f"the database {self._display} is at schema version {current} of 'core' "
                f"and this chargeback reads version {known}; "
                + ("upgrade chargeback" if current > known else "run 'chargeback migrate'")
            )

    async def close(self) -> None:
        """Close the pool. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresBackend:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- connections -------------------------------------------------------------------
    def _the_pool(self, action: str) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise StorageError(f"{action} failed: the storage is not open; call open() first")
        return self._pool

    def _writable(self, action: str) -> AsyncConnectionPool[Conn]:
        pool = self._the_pool(action)
        if self._read_only:
            raise StorageError(
                f"{action} failed: the database {self._display} was opened read-only"
            )
        return pool

    @asynccontextmanager
    async def _read(self, action: str) -> AsyncIterator[Conn]:
        """A pooled connection for reads (autocommit), errors translated."""
        pool = self._the_pool(action)
        try:
            async with pool.connection() as conn:
                yield conn
        except DB_ERRORS as exc:
            raise self.storage_error(exc, action) from None

    @asynccontextmanager
    async def _write(self, action: str) -> AsyncIterator[Conn]:
        """One write transaction on a pooled connection, errors translated."""
        pool = self._writable(action)
        try:
            async with pool.connection() as conn, conn.transaction():
                yield conn
        except DB_ERRORS as exc:
            raise self.storage_error(exc, action) from None

    # -- fencing (leases) ---------------------------------------------------------------
    def require_leases(self, owner_id: str) -> None:
        """From now on a tenant's date commits need its lease (:meth:`set_fence`)."""
        self._unfenced = Fence(owner_id, -1)

    def set_fence(self, tenant_id: str, fence: Fence | None) -> None:
        """Make the tenant's date commits require ``fence``; ``None``: the lease is not
        held (commits refused once :meth:`require_leases` was called, else unfenced)."""
        if fence is None:
            self._fences.pop(tenant_id, None)
        else:
            self._fences[tenant_id] = fence

    @asynccontextmanager
    async def connection(self, action: str) -> AsyncIterator[Conn]:
        """A pooled connection (autocommit) for the lease manager, errors translated."""
        async with self._read(action) as conn:
            yield conn

    # -- plugin modules ----------------------------------------------------------------
    async def register_modules(self, modules: Sequence[StorageModule]) -> None:
        """Apply each module's migrations not yet applied, in PostgreSQL's dialect.

        A module may give ``postgresql_migrations()`` of its own; otherwise its SQLite
        migrations are mapped by :func:`~.schema.plugin_sql`.

        Raises:
            StorageError: a namespace is ``"core"``, a migration failed (it was rolled
                back), or the database records a newer version than the module knows.
        """
        for module in modules:
            namespace = module.namespace
            if namespace == CORE_NAMESPACE:
                raise StorageError("a plugin storage module may not use the 'core' namespace")
            own = getattr(module, "postgresql_migrations", None)
            steps = list(own()) if callable(own) else [
                Migration(m.version, m.name, plugin_sql(m.sql)) for m in module.migrations()
            ]  # fmt: skip
            action = f"applying the migrations of storage module {namespace!r}"
            if self._read_only:
                raise StorageError(f"{action} failed: the storage is not open for writing")
            async with self._read(action) as conn:
                await self._apply(conn, namespace, steps)

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

    async def sync_inventory(
        self,
        tenant_id: str,
        resources: Sequence[Resource],
        identities: Sequence[Identity],
        seen_at: dt.datetime,
        *,
        deletable_types: frozenset[str] | None = None,
    ) -> InventoryDelta:
        """Upsert what was listed; mark unlisted items of ``deletable_types`` deleted."""
        async with self._write(f"syncing the inventory of tenant {tenant_id!r}") as conn:
            return await _inventory.sync_inventory(
                conn, POSTGRES, tenant_id=tenant_id, resources=resources, identities=identities,
                seen_at=seen_at, deletable_types=deletable_types,
            )  # fmt: skip

    async def load_inventory(self, tenant_id: str) -> tuple[list[Resource], list[Identity]]:
        """Return every resource and identity ever seen, deleted ones with ``deleted_at``."""
        async with self._read(f"loading the inventory of tenant {tenant_id!r}") as conn:
            return await _inventory.load_inventory(conn, POSTGRES, tenant_id)

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

        See :mod:`._commit`. Under a lease the commit is fenced: refused with
        :class:`~._commit.LeaseLostError` once this replica no longer holds the tenant.

        Raises:
            ValueError: a line, row or plugin row belongs to another tenant or date.
            StorageError: the database failed, or the lease was lost (nothing written).
        """
        prepared = shared_commit.prepare_commit(
            tenant_id, day, lines=lines, rows=rows, plugin_rows=plugin_rows,
            billing_fingerprint=billing_fingerprint, settings_fingerprint=settings_fingerprint,
            inventory_fingerprint=inventory_fingerprint, calculated_at=calculated_at,
        )  # fmt: skip
        action = f"committing tenant {tenant_id!r} date {day}"
        pool = self._writable(action)
        try:
            async with pool.connection() as conn:
                fence = self._fences.get(tenant_id, self._unfenced)
                calc_seq = await write_commit(conn, prepared, fence)
        except DB_ERRORS as exc:
            raise self.storage_error(exc, action) from None
        return shared_commit.date_state_of(prepared, calc_seq)

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

        Raises:
            StorageError: the date was never calculated.
        """
        params = {"tenant": tenant_id, "emitter": emitter, "date": day, "seq": calc_seq,
                  "at": emitted_at, "error": error, "ok": error is None}  # fmt: skip
        async with self._write(f"recording emission {emitter!r} of {tenant_id!r} {day}") as conn:
            await conn.execute(_queries.RECORD_EMISSION, params)

    # -- reads -------------------------------------------------------------------------
    async def read_rows(self, tenant_id: str, day: dt.date) -> list[ChargebackRow]:
        """Return the chargeback rows of one tenant-date, in the order they were committed."""
        async with self._read(f"reading the rows of tenant {tenant_id!r} date {day}") as conn:
            return await _queries.read_rows(conn, tenant_id, day)

    async def reconcile(self, tenant_id: str, start: dt.date, end: dt.date) -> list[ReconcileRow]:
        """Return billed vs allocated per date and product type, ``start <= day < end``."""
        async with self._read(f"reconciling tenant {tenant_id!r}") as conn:
            return await _queries.reconcile(conn, tenant_id, start, end)

    async def cost_totals(
        self, tenant_id: str | None, start: dt.date, end: dt.date
    ) -> list[CostTotal]:
        """Sum chargeback amounts per tenant, identity, product type, cost type and env."""
        async with self._read("summing cost totals") as conn:
            return await _queries.cost_totals(conn, tenant_id, start, end)

    async def latest_calculated_date(self, tenant_id: str) -> dt.date | None:
        """Return the newest calculated date of a tenant, if any."""
        async with self._read("reading the latest calculated date") as conn:
            cur = await conn.execute(
                "SELECT MAX(date) FROM date_state WHERE tenant_id = %s", (tenant_id,)
            )
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def tenants(self) -> list[str]:
        """Return every tenant with stored state (dates, runs, reruns or inventory)."""
        async with self._read("listing tenants") as conn:
            cur = await conn.execute(_TENANTS)
            return [str(r[0]) for r in await cur.fetchall()]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
