"""Ordered schema migrations, recorded in the database (DESIGN §7).

Every namespace (``"core"`` for the tables below, a plugin's
:attr:`~chargeback.core.plugin.protocols.StorageModule.namespace` for its own) has
ordered :class:`~chargeback.core.plugin.protocols.Migration` steps. Each applied step
is a row of ``schema_migrations(namespace, version, name, applied_at)``; each step runs
in its own ``BEGIN IMMEDIATE`` transaction together with that row, so a step is either
applied and recorded or neither, and two processes opening the same file never apply a
step twice (the second re-checks under the write lock and skips it).

A database whose recorded version of a namespace is newer than the code knows is
refused: running old code on a newer schema could silently write rows the newer code
misreads.

Storage conventions of the core schema:

- dates are ISO ``YYYY-MM-DD`` text, datetimes ISO-8601 UTC text with microseconds
  (``2024-05-01T00:00:00.000000+00:00``), so text order is time order;
- money is ``INTEGER`` minor units (nanos, :mod:`chargeback.core.money`). SQLite
  integers are signed 64-bit, so one stored amount and every ``SUM`` must stay within
  ±9.2e18 nanos = ±9.2e9 units of the currency; a year of a large organisation's bill
  (1e8 per year) fits with two orders of magnitude to spare, and an overflow is an
  error (``integer overflow``), never a wrong number;
- ``attributes`` columns hold a JSON object of strings.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Sequence

import aiosqlite

from chargeback.core.plugin.protocols import Migration
from chargeback.core.storage._util import datetime_to_text, rollback_quietly
from chargeback.errors import StorageError

__all__ = [
    "CORE_MIGRATIONS",
    "CORE_NAMESPACE",
    "apply_migrations",
    "ensure_migrations_table",
    "recorded_version",
    "split_statements",
]

CORE_NAMESPACE = "core"

_V1_SCHEMA = """
CREATE TABLE billing_lines (
    tenant_id        TEXT NOT NULL,
    date             TEXT NOT NULL,
    line_id          TEXT NOT NULL,
    product_type     TEXT NOT NULL,
    product_category TEXT NOT NULL,
    resource_id      TEXT,
    env_id           TEXT,
    amount           INTEGER NOT NULL,
    quantity         TEXT,              -- Decimal as text, exact
    unit             TEXT,
    unit_price       TEXT,              -- Decimal as text, exact
    original_amount  INTEGER,
    discount_amount  INTEGER,
    description      TEXT,
    attributes       TEXT NOT NULL DEFAULT '{}',
    error            TEXT,
    PRIMARY KEY (tenant_id, date, line_id)
) WITHOUT ROWID;

-- The hot table: a rowid table with a single index, because every extra index
-- costs about as much per inserted row as the table itself. The (tenant_id, date)
-- index serves the per-date reads and deletes and narrows the reconcile and
-- cost_totals aggregations to the requested days. Rows of one date are unique by
-- construction: commit_date deletes the date's rows before inserting the new ones,
-- in one transaction.
CREATE TABLE chargeback_rows (
    tenant_id        TEXT NOT NULL,
    date             TEXT NOT NULL,
    line_id          TEXT NOT NULL,
    identity_id      TEXT NOT NULL,
    product_type     TEXT NOT NULL,
    product_category TEXT NOT NULL,
    resource_id      TEXT,
    env_id           TEXT,
    cost_type        TEXT NOT NULL,
    rule             TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    reason           TEXT
);
CREATE INDEX chargeback_rows_by_date ON chargeback_rows (tenant_id, date);

CREATE TABLE date_state (
    tenant_id             TEXT NOT NULL,
    date                  TEXT NOT NULL,
    billing_fingerprint   TEXT NOT NULL,
    settings_fingerprint  TEXT NOT NULL,
    inventory_fingerprint TEXT NOT NULL,
    calc_seq              INTEGER NOT NULL,
    calculated_at         TEXT NOT NULL,
    line_count            INTEGER NOT NULL,
    row_count             INTEGER NOT NULL,
    billed_total          INTEGER NOT NULL,
    allocated_total       INTEGER NOT NULL,
    unallocated_total     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    status      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    counts      TEXT NOT NULL DEFAULT '{}',
    error       TEXT
);
CREATE INDEX runs_by_tenant ON runs (tenant_id, started_at);

CREATE TABLE rerun_requests (
    request_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT NOT NULL,
    start_date   TEXT NOT NULL,
    end_date     TEXT NOT NULL,          -- inclusive
    requested_at TEXT NOT NULL,
    completed_at TEXT,
    CHECK (start_date <= end_date)
);
CREATE INDEX rerun_requests_by_tenant ON rerun_requests (tenant_id, completed_at);

-- One row per tenant, emitter and date: the last attempt and the last success.
-- The date must have been calculated; recalculating never deletes date_state rows
-- (commit_date upserts), so the cascade only fires if a date is ever purged.
CREATE TABLE emissions (
    tenant_id    TEXT NOT NULL,
    emitter      TEXT NOT NULL,
    date         TEXT NOT NULL,
    calc_seq     INTEGER NOT NULL,       -- calc_seq of the last attempt
    attempted_at TEXT NOT NULL,          -- time of the last attempt
    error        TEXT,                   -- error of the last attempt; NULL: it succeeded
    attempts     INTEGER NOT NULL,       -- attempts at calc_seq
    emitted_seq  INTEGER,                -- calc_seq of the last successful emission
    emitted_at   TEXT,                   -- time of the last successful emission
    PRIMARY KEY (tenant_id, emitter, date),
    FOREIGN KEY (tenant_id, date) REFERENCES date_state (tenant_id, date) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE resources (
    tenant_id     TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    display_name  TEXT,
    env_id        TEXT,
    parent_id     TEXT,
    owner_id      TEXT,
    created_at    TEXT,
    deleted_at    TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, resource_id)
) WITHOUT ROWID;

CREATE TABLE identities (
    tenant_id     TEXT NOT NULL,
    identity_id   TEXT NOT NULL,
    identity_type TEXT NOT NULL,
    display_name  TEXT,
    owner_id      TEXT,
    resource_id   TEXT,
    created_at    TEXT,
    deleted_at    TEXT,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, identity_id)
) WITHOUT ROWID;

-- Plugin tables that ever received rows in a date commit; every commit clears the
-- date's rows from all of them, so a recalculation that yields no rows for a table
-- leaves none behind.
CREATE TABLE plugin_tables (
    table_name    TEXT PRIMARY KEY,
    first_used_at TEXT NOT NULL
) WITHOUT ROWID;
"""

_V2_ROW_RANGES = """
-- chargeback_rows gets an explicit row_id (an INTEGER PRIMARY KEY: VACUUM keeps it),
-- each tenant-date's rows are one contiguous range of it, and date_state records where
-- the range starts. The (tenant_id, date) index goes: its entries all share one key
-- per date, so every inserted row paid a search comparing that key down the tree,
-- ~23 % of the insert (the table's own insert at the right edge is an append). Reads
-- and deletes of a date now go by its row_id range (see _queries and _transaction).
CREATE TABLE chargeback_rows_v2 (
    row_id           INTEGER PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    date             TEXT NOT NULL,
    line_id          TEXT NOT NULL,
    identity_id      TEXT NOT NULL,
    product_type     TEXT NOT NULL,
    product_category TEXT NOT NULL,
    resource_id      TEXT,
    env_id           TEXT,
    cost_type        TEXT NOT NULL,
    rule             TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    reason           TEXT
);

-- Rows in (tenant_id, date, old rowid) order, numbered from 1: each date's rows are
-- contiguous whatever the old rowids were. SQLite reads them in the old index's order
-- (no INDEXED BY: a file whose index was dropped by hand still upgrades, sorting).
INSERT INTO chargeback_rows_v2 (row_id, tenant_id, date, line_id, identity_id, product_type,
    product_category, resource_id, env_id, cost_type, rule, amount, reason)
SELECT row_number() OVER (ORDER BY tenant_id, date, rowid), tenant_id, date, line_id,
    identity_id, product_type, product_category, resource_id, env_id, cost_type, rule,
    amount, reason
FROM chargeback_rows
ORDER BY tenant_id, date, rowid;

-- NULL: the date has no rows. The same numbering, per date: its first row comes after
-- the rows of every earlier (tenant_id, date).
ALTER TABLE date_state ADD COLUMN first_row_id INTEGER;
UPDATE date_state SET first_row_id = g.first, row_count = g.n
FROM (
    SELECT tenant_id, date, n,
        SUM(n) OVER (ORDER BY tenant_id, date ROWS UNBOUNDED PRECEDING) - n + 1 AS first
    FROM (SELECT tenant_id, date, COUNT(*) AS n FROM chargeback_rows GROUP BY tenant_id, date)
) AS g
WHERE g.tenant_id = date_state.tenant_id AND g.date = date_state.date;
UPDATE date_state SET row_count = 0 WHERE first_row_id IS NULL;

DROP TABLE chargeback_rows;
ALTER TABLE chargeback_rows_v2 RENAME TO chargeback_rows;
"""

_V3_OWNERSHIP = """
-- Ownership (DESIGN §14): attribution is a step after allocation, kept apart from the
-- chargeback rows so re-attributing after a rule change never rewrites them.
-- Each tenant's rule sets, numbered as they first appear.
CREATE TABLE ownership_rule_versions (
    tenant_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    rules       TEXT NOT NULL,           -- the tenant's rules as JSON
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version),
    UNIQUE (tenant_id, fingerprint)
);
-- One row per attributed tenant-date: which calculation (calc_seq) under which rule
-- version, and every (identity, resource, env) key of its rows with its amount, row
-- count and decision, as one JSON text (DateAttribution.encode: ~10k keys a date for a
-- large organisation, one insert instead of ten thousand).
CREATE TABLE ownership_dates (
    tenant_id     TEXT NOT NULL,
    date          TEXT NOT NULL,
    rule_version  INTEGER NOT NULL,
    calc_seq      INTEGER NOT NULL,
    attributed_at TEXT NOT NULL,
    total         INTEGER NOT NULL,       -- equals date_state.allocated_total
    unassigned    INTEGER NOT NULL,
    conflicts     INTEGER NOT NULL,       -- keys decided despite a conflicting rule
    shares        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, date)
);
-- The team totals of each attributed date, for set-based reads (metrics, the API).
CREATE TABLE ownership_team_totals (
    tenant_id  TEXT NOT NULL,
    date       TEXT NOT NULL,
    team       TEXT NOT NULL,
    dimensions TEXT NOT NULL,            -- JSON object of the declared dimensions set
    amount     INTEGER NOT NULL,
    row_count  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, team, dimensions)
) WITHOUT ROWID;
"""

_V4_USAGE_LEDGER = """
-- The usage ledger (DESIGN §13): every usage figure fetched, kept after the source
-- forgets it. One row per (tenant, date, query, resource, principal); a cell that was
-- fetched and held no usage is one row with principal_id '' and value NULL, so an
-- empty cell and a missing cell differ. Written in its own transaction as soon as it
-- is fetched, before the date it serves is allocated.
CREATE TABLE usage_ledger (
    tenant_id    TEXT NOT NULL,
    date         TEXT NOT NULL,
    query        TEXT NOT NULL,
    resource_id  TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    value        INTEGER,
    source       TEXT NOT NULL,
    fetched_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, date, query, resource_id, principal_id)
) WITHOUT ROWID;
"""

_V5_RUN_OWNERS = """
-- The process that started each run (host/pid/start, see core.storage.owner): a run left
-- 'running' by a process that is gone is marked 'interrupted' by the next process that
-- opens the database, while a live process's run is left alone. NULL: written before.
ALTER TABLE runs ADD COLUMN owner TEXT;
"""

_V6_PERIODS = """
-- Open and closed days (DESIGN §16): a day is open while its bill may still change and
-- closed after; a closed day whose billing changes (a restatement) opens again. One row
-- per calculated tenant-date, kept by sync_periods (core/storage/_periods.py).
CREATE TABLE period_state (
    tenant_id           TEXT NOT NULL,
    date                TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    changed_at          TEXT NOT NULL,     -- when status last changed
    closed_fingerprint  TEXT,              -- the billing fingerprint the day last closed with
    closed_billed_total INTEGER,           -- and its billed total (minor units)
    reopened_on         TEXT,              -- the day a restatement last reopened it
    restatements        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, date)
) WITHOUT ROWID;

-- Every restatement of a closed day: the bill before (as it closed) and after.
CREATE TABLE restatements (
    restatement_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id          TEXT NOT NULL,
    date               TEXT NOT NULL,
    detected_at        TEXT NOT NULL,
    billed_before      INTEGER NOT NULL,
    billed_after       INTEGER NOT NULL,
    fingerprint_before TEXT NOT NULL,
    fingerprint_after  TEXT NOT NULL
);
CREATE INDEX restatements_by_tenant ON restatements (tenant_id, date);
"""

CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _V1_SCHEMA),
    Migration(2, "chargeback rows by row_id range", _V2_ROW_RANGES),
    Migration(3, "ownership attributions", _V3_OWNERSHIP),
    Migration(4, "usage ledger", _V4_USAGE_LEDGER),
    Migration(5, "the owner process of each run", _V5_RUN_OWNERS),
    Migration(6, "period state and restatements", _V6_PERIODS),
)
"""The core schema's steps, oldest first. Append new steps; never edit applied ones."""

_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    namespace  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (namespace, version)
) WITHOUT ROWID
"""

_NAMESPACE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def split_statements(script: str) -> list[str]:
    """Split an SQL script into single statements.

    Uses :func:`sqlite3.complete_statement`, which understands string literals,
    comments and trigger bodies, so a ``;`` inside them does not split. (The
    ``executescript`` shortcut is not usable: it commits any open transaction first.)

    Raises:
        ValueError: the script ends with an incomplete statement.
    """
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_sql(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_sql(buffer):
        raise ValueError(f"incomplete SQL statement at the end of the script: {buffer.strip()!r}")
    return statements


def _has_sql(text: str) -> bool:
    """Return whether ``text`` holds more than whitespace, ``;`` and comments."""
    lines = (line.split("--", 1)[0] for line in text.splitlines())
    return any(line.strip(" \t\r;") for line in lines)


def _validate(namespace: str, migrations: Sequence[Migration]) -> None:
    if not _NAMESPACE_RE.match(namespace):
        raise StorageError(
            f"storage namespace {namespace!r} is invalid; use letters, digits, '_', '.', '-'"
        )
    versions = [m.version for m in migrations]
    if any(v < 1 for v in versions) or versions != sorted(set(versions)):
        raise StorageError(
            f"migrations of namespace {namespace!r} must have unique versions >= 1 in "
            f"increasing order, got {versions}"
        )


async def ensure_migrations_table(conn: aiosqlite.Connection) -> None:
    """Create ``schema_migrations`` if it does not exist (one statement, atomic)."""
    await conn.execute(_SCHEMA_MIGRATIONS)


async def recorded_version(conn: aiosqlite.Connection, namespace: str) -> int:
    """Return the newest applied version of ``namespace`` (0: none)."""
    rows = await conn.execute_fetchall(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE namespace = ?",
        (namespace,),
    )
    return int(next(iter(rows))[0])


async def apply_migrations(
    conn: aiosqlite.Connection,
    namespace: str,
    migrations: Sequence[Migration],
    *,
    now: dt.datetime,
) -> list[int]:
    """Apply the steps of ``namespace`` not yet recorded; return the versions applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. Each step and its record commit together.

    Raises:
        StorageError: the migrations are malformed, or the database records a newer
            version than ``migrations`` know.
        sqlite3.Error: a step failed (it was rolled back); the caller translates it.
    """
    _validate(namespace, migrations)
    known = migrations[-1].version if migrations else 0
    current = await recorded_version(conn, namespace)
    if current > known:
        raise StorageError(
            f"the database records schema version {current} of {namespace!r}, but this "
            f"chargeback knows only up to version {known}; upgrade chargeback (or the "
            "plugin) to the version that wrote this database, or use another database file"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version <= current:
            continue
        try:
            statements = split_statements(migration.sql)
        except ValueError as exc:
            raise StorageError(
                f"migration {migration.version} ({migration.name!r}) of {namespace!r} is "
                f"malformed: {exc}"
            ) from exc
        await conn.execute("BEGIN IMMEDIATE")
        try:
            done = await conn.execute_fetchall(
                "SELECT 1 FROM schema_migrations WHERE namespace = ? AND version = ?",
                (namespace, migration.version),
            )
            if not list(done):  # another process may have applied it meanwhile
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (namespace, version, name, applied_at) "
                    "VALUES (?, ?, ?, ?)",
                    (namespace, migration.version, migration.name, datetime_to_text(now)),
                )
                applied.append(migration.version)
            await conn.execute("COMMIT")
        except BaseException:
            await rollback_quietly(conn)
            raise
    return applied
