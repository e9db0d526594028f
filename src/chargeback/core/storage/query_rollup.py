"""Daily rollups of the chargeback rows for the query API (issue 19's "Fast"), on SQLite.

A large organisation's day has ~50k rows and a 90-day question reads ~4.8 M of them;
most questions group by few dimensions, whose groups per day are far fewer. Two
rollups keep them, per tenant and date:

    query_rollup_product(tenant_id, date, product_type, product_category, env_id,
                         cost_type, amount)                      ~100 groups a day
    query_rollup_identity(tenant_id, date, identity_id, cost_type, amount)
                                                                 ~3.4k groups a day
    query_rollup_team(tenant_id, date, team, product_type, cost_type, amount)

and ``query_rollup_state(tenant_id, date, calc_seq)`` says which calculation of the
date they sum. :func:`refresh_rollup` rebuilds one date in one ``BEGIN IMMEDIATE``
transaction from the date's row range as it stands, reading its ``calc_seq`` inside
the same transaction, so a rollup is always the exact sum of the rows of the
calculation it names. The team rollup maps the rows' (identity, resource, environment)
keys through the date's ownership attribution when that attribution is of the same
calculation, and records its rule version (``team_rule_version``; NULL: none).
Readers (:mod:`.query_sqlite`) use a date's rollup only while
that ``calc_seq`` is the date's current one and read the rows otherwise: a rollup can
be missing or behind, never wrong. The ``query_rollup`` emitter
(:mod:`chargeback.core.emitters.query_rollup`) refreshes every committed date after
the commit, and on an existing database catches up on every date, since each is
pending for a new emitter.

The tables belong to their own migration namespace (``query_rollup``), applied by
:func:`refresh_rollup` on first use.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import aiosqlite
import structlog

from chargeback.core.ownership.attribution import DateAttribution
from chargeback.core.ownership.matcher import Key
from chargeback.core.plugin.protocols import Migration
from chargeback.core.storage._util import rollback_quietly, translate_error
from chargeback.core.storage.migrations import apply_migrations, ensure_migrations_table

__all__ = ["NAMESPACE", "ROLLUPS", "ROLLUP_MIGRATIONS", "refresh_rollup"]

log = structlog.get_logger(__name__)

NAMESPACE = "query_rollup"

_SCHEMA = """
CREATE TABLE query_rollup_state (
    tenant_id TEXT NOT NULL,
    date      TEXT NOT NULL,
    calc_seq  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date)
) WITHOUT ROWID;
CREATE TABLE query_rollup_product (
    tenant_id        TEXT NOT NULL,
    date             TEXT NOT NULL,
    product_type     TEXT NOT NULL,
    product_category TEXT NOT NULL,
    env_id           TEXT NOT NULL,
    cost_type        TEXT NOT NULL,
    amount           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, product_type, product_category, env_id, cost_type)
) WITHOUT ROWID;
CREATE TABLE query_rollup_identity (
    tenant_id   TEXT NOT NULL,
    date        TEXT NOT NULL,
    identity_id TEXT NOT NULL,
    cost_type   TEXT NOT NULL,
    amount      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, identity_id, cost_type)
) WITHOUT ROWID;
"""

_TEAMS = """
-- Team x cost type per date, from the date's ownership attribution as it stood when the
-- rollup was refreshed (its rule version recorded: readers use it only while the
-- attribution is still of that version and of the date's current calculation).
CREATE TABLE query_rollup_team (
    tenant_id TEXT NOT NULL,
    date      TEXT NOT NULL,
    team      TEXT NOT NULL,
    cost_type TEXT NOT NULL,
    amount    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, team, cost_type)
) WITHOUT ROWID;
ALTER TABLE query_rollup_state ADD COLUMN team_rule_version INTEGER;
"""

_TEAM_PRODUCTS = """
-- The team rollup gains the product type (the UI's cost by team stacked by product type).
-- Dates rolled up before this step lose their team rollup (team_rule_version NULL): they
-- are read through their attributions until their next refresh.
DROP TABLE query_rollup_team;
CREATE TABLE query_rollup_team (
    tenant_id    TEXT NOT NULL,
    date         TEXT NOT NULL,
    team         TEXT NOT NULL,
    product_type TEXT NOT NULL,
    cost_type    TEXT NOT NULL,
    amount       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, date, team, product_type, cost_type)
) WITHOUT ROWID;
UPDATE query_rollup_state SET team_rule_version = NULL;
"""

ROLLUP_MIGRATIONS = (
    Migration(1, "daily rollups for the query API", _SCHEMA),
    Migration(2, "daily team rollup", _TEAMS),
    Migration(3, "team rollup by product type", _TEAM_PRODUCTS),
)

ROLLUPS: dict[str, frozenset[str]] = {
    "query_rollup_product": frozenset(
        {"product_type", "product_category", "environment", "cost_type", "date"}
    ),
    "query_rollup_identity": frozenset({"identity", "cost_type", "date"}),
    "query_rollup_team": frozenset({"team", "product_type", "cost_type", "date"}),
}
"""Each rollup table and the dimensions (as the API names them) it can answer."""

_ROWS = """chargeback_rows AS r WHERE r.row_id >= :first AND r.row_id < :first + :n
    AND r.tenant_id = :tenant AND r.date = :date"""

_REFRESH = (
    "DELETE FROM query_rollup_product WHERE tenant_id = :tenant AND date = :date",
    "DELETE FROM query_rollup_identity WHERE tenant_id = :tenant AND date = :date",
    "INSERT INTO query_rollup_product SELECT :tenant, :date, r.product_type, "
    "r.product_category, COALESCE(r.env_id, ''), r.cost_type, SUM(r.amount) FROM " + _ROWS + " "
    "GROUP BY r.product_type, r.product_category, COALESCE(r.env_id, ''), r.cost_type",
    "INSERT INTO query_rollup_identity SELECT :tenant, :date, r.identity_id, r.cost_type, "
    "SUM(r.amount) FROM " + _ROWS + " GROUP BY r.identity_id, r.cost_type",
    "INSERT INTO query_rollup_state (tenant_id, date, calc_seq) VALUES (:tenant, :date, :seq) "
    "ON CONFLICT (tenant_id, date) DO UPDATE SET calc_seq = excluded.calc_seq",
)

_migrated: set[str] = set()


async def refresh_rollup(
    path: str | Path, tenant_id: str, day: dt.date, *, busy_timeout_s: float = 30.0
) -> int | None:
    """Rebuild the rollups of one tenant-date from its rows; return the ``calc_seq`` summed.

    ``None``: the date is not calculated (its rollups are left as they are: readers
    ignore them without a current ``calc_seq``).

    Raises:
        StorageError: the database failed (locked past the busy timeout, full, ...).
    """
    path = str(path)
    action = f"refreshing the query rollups of {tenant_id!r} {day}"
    try:
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if path not in _migrated:
                now = dt.datetime.now(dt.UTC)
                await ensure_migrations_table(conn)
                await apply_migrations(conn, NAMESPACE, ROLLUP_MIGRATIONS, now=now)
                _migrated.add(path)
            return await _refresh(conn, tenant_id, day)
    except (aiosqlite.Error, OverflowError, ValueError) as exc:
        raise translate_error(exc, action, path) from exc


async def _refresh(conn: aiosqlite.Connection, tenant_id: str, day: dt.date) -> int | None:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        found = list(
            await conn.execute_fetchall(
                "SELECT calc_seq, COALESCE(first_row_id, 0), row_count FROM date_state "
                "WHERE tenant_id = ? AND date = ?",
                (tenant_id, day.isoformat()),
            )
        )
        if not found:
            await conn.execute("ROLLBACK")
            return None
        seq, first, count = (int(v) for v in found[0])
        params = {"tenant": tenant_id, "date": day.isoformat(), "first": first, "n": count,
                  "seq": seq}  # fmt: skip
        for statement in _REFRESH:
            await conn.execute(statement, params)
        await _refresh_teams(conn, params)
        await conn.execute("COMMIT")
    except BaseException:
        await rollback_quietly(conn)
        raise
    return seq


_KEYS = (
    "SELECT r.identity_id, COALESCE(r.resource_id, ''), COALESCE(r.env_id, ''), "
    "r.product_type, r.cost_type, SUM(r.amount) FROM " + _ROWS + " GROUP BY 1, 2, 3, 4, 5"
)


async def _refresh_teams(conn: aiosqlite.Connection, params: dict[str, object]) -> None:
    """The date's team rollup from its attribution, if that is of the current calculation."""
    await conn.execute(
        "DELETE FROM query_rollup_team WHERE tenant_id = :tenant AND date = :date", params
    )
    found: list[aiosqlite.Row] = []
    if await _has_table(conn, "ownership_dates"):
        found = list(
            await conn.execute_fetchall(
                "SELECT rule_version, calc_seq, shares FROM ownership_dates "
                "WHERE tenant_id = :tenant AND date = :date",
                params,
            )
        )
    version: int | None = None
    if found and int(found[0][1]) == params["seq"]:
        version = int(found[0][0])
        day = dt.date.fromisoformat(str(params["date"]))
        try:
            att = DateAttribution.decode(str(params["tenant"]), day, version, int(found[0][1]),
                                         str(found[0][2]))  # fmt: skip
        except (KeyError, ValueError, TypeError, IndexError) as exc:  # a format it cannot read
            log.warning("attribution unreadable, no team rollup", tenant_id=params["tenant"],
                        date=params["date"], error=repr(exc))  # fmt: skip
            att = None
            version = None
        teams = {} if att is None else {s.key: s.decision.team for s in att.shares}
        sums: dict[tuple[str, str, str], int] = {}
        for identity, resource, env, product, cost_type, amount in await conn.execute_fetchall(
            _KEYS, params
        ):
            team = teams.get(Key(identity, resource, env))
            if team is None:  # the attribution does not cover the rows: no team rollup
                version, sums = None, {}
                break
            group = (team, product, cost_type)
            sums[group] = sums.get(group, 0) + int(amount)
        await conn.executemany(
            "INSERT INTO query_rollup_team VALUES (?, ?, ?, ?, ?, ?)",
            [(params["tenant"], params["date"], *group, a) for group, a in sums.items()],
        )
    await conn.execute(
        "UPDATE query_rollup_state SET team_rule_version = ? WHERE tenant_id = ? AND date = ?",
        (version, params["tenant"], params["date"]),
    )


async def _has_table(conn: aiosqlite.Connection, name: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    )
    return bool(list(rows))
