"""Fixtures of the showback report tests: one real database over two months of ccloud_sim.

``report_db_master`` runs the Confluent Cloud plugin in a real TenantRuntime against the
sim (over ASGI) with ownership attribution into a SQLite file, once per session: the
calculated days are 2026-02-16 .. 2026-03-17 (the end of February and most of March), so
a March report has a month before to compare with. Every test gets a copy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.support.sim_db import compute_sim_db, copy_db

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "acme"
LOOKBACK_DAYS = 32
CUTOFF_DAYS = 3
FIRST_DAY = NOW.date() - dt.timedelta(days=LOOKBACK_DAYS)
LAST_DAY = NOW.date() - dt.timedelta(days=CUTOFF_DAYS)
"""The calculated days: FIRST_DAY..LAST_DAY, both included."""

OWNERSHIP = {
    "rules": [
        {"name": "by-name", "team": "{team}",
         "match": {"identity_name": "^(?:svc-)?(?P<team>[a-z]+)-"}},
    ]
}  # fmt: skip
"""Teams from identity names (``svc-payments-x`` -> payments); the rest is UNASSIGNED."""


@pytest.fixture(scope="session")
def report_db_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's database, computed once."""
    return compute_sim_db(
        tmp_path_factory.mktemp("report-db") / "chargeback.db", now=NOW, tenant=TENANT,
        lookback_days=LOOKBACK_DAYS, cutoff_days=CUTOFF_DAYS, ownership=OWNERSHIP,
    )  # fmt: skip


@pytest.fixture
def report_db(report_db_master: Path, tmp_path: Path) -> Path:
    """A private copy of the session's database."""
    return copy_db(report_db_master, tmp_path / "chargeback.db")
