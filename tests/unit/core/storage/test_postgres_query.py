"""The query API's reads on PostgreSQL answer exactly what SQLite's answer (DESIGN §15).

A differential property: the same random rows (credits too) are committed through both
backends, and every random query (dimensions, step, window, filters) must give the same
groups from :class:`PostgresQuerySource` as from the SQLite query source, whose answers
the conservation property (``tests/unit/core/query/test_allocation_conservation.py``)
proves exact to the minor unit. So PostgreSQL's answers conserve the amounts too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from tests.storage_targets import POSTGRESQL, SQLITE
from tests.unit.core.query import test_allocation_conservation as conservation

from chargeback.core.query import Filter, Step, Window
from chargeback.core.query.source import query_source
from chargeback.core.storage.factory import open_backend
from chargeback.core.storage.query_sqlite import SQLiteQuerySource

_tenants = itertools.count()


async def _answers(root: Path, days: dict, query: dict) -> tuple[list, list, tuple]:  # type: ignore[type-arg]
    tenant = f"t{next(_tenants)}"
    plan = [
        (day, lines, [r._replace(tenant_id=tenant) for r in rows])
        for day, lines, rows in conservation._commit_plan(days)
    ]
    start = conservation.BASE + dt.timedelta(days=int(query["start"]))
    window = Window(start, start + dt.timedelta(days=int(query["length"])))
    dims: tuple[str, ...] = query["dims"]
    step: Step | None = query["step"]
    filters = tuple(Filter(d, tuple(v), neg) for d, v, neg in query["filters"])
    answers = []
    for target in (SQLITE, POSTGRESQL):
        settings_ = target.make(root / target.name)
        async with open_backend(settings_) as storage:
            for day, lines, rows in plan:
                await storage.commit_date(
                    tenant, day, lines=lines, rows=rows, plugin_rows=[],
                    billing_fingerprint="b", settings_fingerprint="s",
                    inventory_fingerprint="i", calculated_at=conservation.NOW,
                )  # fmt: skip
            source = (
                SQLiteQuerySource(settings_.path) if target is SQLITE else query_source(storage)
            )
            groups = await source.allocation_groups(tenant, window, step, dims, filters)
            answers.append(sorted(groups))
    return answers[0], answers[1], (tenant, window, step, dims, filters)


class TestPostgresQuerySource:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(days=conservation.days_st, query=conservation.query_st)
    def test_groups_equal_sqlites(self, tmp_path_factory: object, days: dict, query: dict) -> None:  # type: ignore[type-arg]
        """Every query's groups on PostgreSQL equal SQLite's, bucket, key and amount."""
        root: Path = tmp_path_factory.getbasetemp() / "pg-query"  # type: ignore[attr-defined]
        root.mkdir(exist_ok=True)
        (root / "sqlite").mkdir(exist_ok=True)
        (root / "postgresql").mkdir(exist_ok=True)
        sqlite_groups, pg_groups, asked = asyncio.run(_answers(root, days, query))
        assert pg_groups == sqlite_groups, asked
