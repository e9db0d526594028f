"""The attribution tables (core migration 3) on SQLite and PostgreSQL (DESIGN §14).

One class for both backends: the statements are the same apart from the parameter
marker, dates and times (ISO text on SQLite, ``DATE``/``TIMESTAMPTZ`` on PostgreSQL) and
how a connection runs a statement; :class:`Dialect` holds those differences. The
transactions are the backend's own (its ``_write`` / ``_read``: the write lock and the
error translation), so an attribution write queues behind a date commit like any
other write.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, cast

from chargeback.core.ownership.attribution import DateAttribution, TeamTotal
from chargeback.core.ownership.rules import RuleSet
from chargeback.core.ownership.store import AttributionState, OwnershipStore
from chargeback.core.storage._dialect import POSTGRES, SQLITE, Dialect
from chargeback.core.storage.backend import StorageBackend

__all__ = ["ownership_store"]

_VERSION = "SELECT version FROM ownership_rule_versions WHERE tenant_id = ? AND fingerprint = ?"
_NEW_VERSION = (
    "INSERT INTO ownership_rule_versions (tenant_id, version, fingerprint, rules, created_at) "
    "SELECT ?, COALESCE(MAX(version), 0) + 1, ?, ?, ? FROM ownership_rule_versions "
    "WHERE tenant_id = ?"
)
_UPSERT_DATE = """
INSERT INTO ownership_dates (tenant_id, date, rule_version, calc_seq, attributed_at, total,
    unassigned, conflicts, shares)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, date) DO UPDATE SET rule_version = excluded.rule_version,
    calc_seq = excluded.calc_seq, attributed_at = excluded.attributed_at,
    total = excluded.total, unassigned = excluded.unassigned,
    conflicts = excluded.conflicts, shares = excluded.shares
"""
_DELETE_TOTALS = "DELETE FROM ownership_team_totals WHERE tenant_id = ? AND date = ?"
_INSERT_TOTAL = (
    "INSERT INTO ownership_team_totals (tenant_id, date, team, dimensions, amount, row_count) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_REEMIT = "UPDATE emissions SET emitted_seq = NULL WHERE tenant_id = ? AND date = ?"
_SET_VERSION = "UPDATE ownership_dates SET rule_version = ? WHERE tenant_id = ? AND date = ?"
_STATES = "SELECT date, rule_version, calc_seq, unassigned FROM ownership_dates WHERE tenant_id = ?"
_READ = (
    "SELECT rule_version, calc_seq, shares FROM ownership_dates WHERE tenant_id = ? AND date = ?"
)
_TOTALS = (
    "SELECT date, team, dimensions, amount, row_count FROM ownership_team_totals "
    "WHERE tenant_id = ? AND date >= ? AND date < ? ORDER BY date, team, dimensions"
)


class _Transactions(Protocol):
    def _write(self, action: str) -> AbstractAsyncContextManager[Any]: ...
    def _read(self, action: str) -> AbstractAsyncContextManager[Any]: ...


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


class _SqlOwnershipStore:
    """:class:`~chargeback.core.ownership.store.OwnershipStore` on a core backend."""

    def __init__(self, backend: _Transactions, dialect: Dialect) -> None:
        self._backend = backend
        self._d = dialect

    def _sql(self, text: str) -> str:
        return self._d.sql(text)

    def _write(self, action: str) -> AbstractAsyncContextManager[Any]:
        return self._backend._write(action)  # the backend's own transaction

    def _read(self, action: str) -> AbstractAsyncContextManager[Any]:
        return self._backend._read(action)

    async def rule_version(self, tenant_id: str, rules: RuleSet, created_at: dt.datetime) -> int:
        """Return the version of ``rules`` for the tenant, recording it if new."""
        d, sql = self._d, self._sql
        async with self._write(f"recording the ownership rules of {tenant_id!r}") as conn:
            if d.serialize is not None:
                await d.fetch(conn, d.serialize, (tenant_id,))
            found = await d.fetch(conn, sql(_VERSION), (tenant_id, rules.fingerprint))
            if not found:
                params = (tenant_id, rules.fingerprint, rules.document, d.time(created_at))
                await d.execute(conn, sql(_NEW_VERSION), (*params, tenant_id))
                found = await d.fetch(conn, sql(_VERSION), (tenant_id, rules.fingerprint))
        return int(found[0][0])

    async def write_attribution(
        self,
        attribution: DateAttribution,
        *,
        rule_version: int,
        attributed_at: dt.datetime,
        reemit: bool,
    ) -> None:
        """Replace the date's attribution and team totals in one transaction."""
        d, sql, att = self._d, self._sql, attribution
        day = d.date(att.day)
        conflicts = sum(1 for s in att.shares if s.decision.conflicts)
        date_row = (
            att.tenant_id, day, rule_version, att.calc_seq, d.time(attributed_at),
            att.total, att.unassigned, conflicts, att.encode(),
        )  # fmt: skip
        totals = [
            (att.tenant_id, day, t.team, json.dumps(dict(t.dimensions)), t.amount, t.rows)
            for t in att.team_totals()
        ]
        action = f"storing the attribution of {att.tenant_id!r} {att.day}"
        async with self._write(action) as conn:
            await d.execute(conn, sql(_UPSERT_DATE), date_row)
            await d.execute(conn, sql(_DELETE_TOTALS), (att.tenant_id, day))
            if totals:
                await d.executemany(conn, sql(_INSERT_TOTAL), totals)
            if reemit:
                await d.execute(conn, sql(_REEMIT), (att.tenant_id, day))

    async def set_rule_version(
        self, tenant_id: str, days: Sequence[dt.date], rule_version: int
    ) -> None:
        """Record that ``days``' attributions are unchanged under ``rule_version``."""
        if not days:
            return
        rows = [(rule_version, tenant_id, self._d.date(day)) for day in days]
        async with self._write(f"updating the rule version of {tenant_id!r}") as conn:
            await self._d.executemany(conn, self._sql(_SET_VERSION), rows)

    async def attribution_states(self, tenant_id: str) -> dict[dt.date, AttributionState]:
        """Return the state of every attributed date of a tenant."""
        async with self._read(f"reading the attributions of {tenant_id!r}") as conn:
            rows = await self._d.fetch(conn, self._sql(_STATES), (tenant_id,))
        return {_day(r[0]): AttributionState(int(r[1]), int(r[2]), int(r[3])) for r in rows}

    async def read_attribution(self, tenant_id: str, day: dt.date) -> DateAttribution | None:
        """Return a date's attribution, ``None`` if it was never attributed."""
        async with self._read(f"reading the attribution of {tenant_id!r} {day}") as conn:
            rows = await self._d.fetch(conn, self._sql(_READ), (tenant_id, self._d.date(day)))
        if not rows:
            return None
        version, calc_seq, text = rows[0]
        return DateAttribution.decode(tenant_id, day, int(version), int(calc_seq), str(text))

    async def team_totals(
        self, tenant_id: str, start: dt.date, end: dt.date
    ) -> dict[dt.date, list[TeamTotal]]:
        """Team totals of every attributed date ``start <= day < end``."""
        d = self._d
        async with self._read(f"reading the team totals of {tenant_id!r}") as conn:
            rows = await d.fetch(conn, self._sql(_TOTALS), (tenant_id, d.date(start), d.date(end)))
        out: dict[dt.date, list[TeamTotal]] = {}
        for day, team, dims, amount, count in rows:
            dimensions = tuple((str(k), str(v)) for k, v in json.loads(dims).items())
            out.setdefault(_day(day), []).append(
                TeamTotal(team, dimensions, int(amount), int(count))
            )
        return out


def ownership_store(backend: StorageBackend) -> OwnershipStore:
    """The attribution store of an open core backend (SQLite or PostgreSQL).

    Raises:
        TypeError: the backend is neither (a third-party backend brings its own store).
    """
    from chargeback.core.storage.sqlite import SQLiteBackend  # noqa: PLC0415

    if isinstance(backend, SQLiteBackend):
        return _SqlOwnershipStore(cast(_Transactions, backend), SQLITE)
    from chargeback.core.storage.postgres.backend import PostgresBackend  # noqa: PLC0415

    if isinstance(backend, PostgresBackend):
        return _SqlOwnershipStore(cast(_Transactions, backend), POSTGRES)
    raise TypeError(f"no ownership store for {type(backend).__name__}")
