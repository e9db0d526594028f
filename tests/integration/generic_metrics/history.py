"""Generated history of a shared PostgreSQL platform, with its ground truth.

Thirty UTC days (plus the day before, the counters' baseline) sampled every six hours
(00:00, 06:00, 12:00, 18:00):

- ``pg_team_info{team}``: a team's presence (discovery); team-c arrives on day 10;
- ``pg_database_size_bytes{team, db}``: two databases per team, constant within a day;
- ``pg_queries_total{team}``: a counter growing by a quarter of the day's known queries
  at each sample, so its last sample minus the day before's last is the day's count
  (team-c's starts at 0 at 23:00 the day before it arrives).

On :data:`GAP_DAY` no size or query sample exists (the scrape failed); on
:data:`RESET_DAY` team-b's counter restarts from zero at noon (a server restart).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from tests.support.prometheus import MetricHistory, Point

FIRST = dt.date(2026, 2, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(30)]
BASELINE = FIRST - dt.timedelta(days=1)
HOURS = (0, 6, 12, 18)
TEAMS = ("team-a", "team-b", "team-c")
STATIC = "dba"
LATE_TEAM, ARRIVES = "team-c", FIRST + dt.timedelta(days=10)
GAP_DAY = dt.date(2026, 2, 20)
RESET_TEAM, RESET_DAY = "team-b", dt.date(2026, 2, 8)
GIB = 2**30


def active(team: str, day: dt.date) -> bool:
    """Whether the team has series on the day."""
    return team != LATE_TEAM or day >= ARRIVES


def db_size(team: int, db: int, day: dt.date) -> int:
    """Bytes of one database on one day (constant within the day)."""
    return (team + 1) * (db + 2) * 5 * GIB + (day - BASELINE).days * (team + 3) * 2**26


def day_queries(team: int, day: dt.date) -> int:
    """The team's known queries of the day (a multiple of 4)."""
    return 4 * ((team + 1) * 250_000 + day.toordinal() % 5 * 10_000 * (team + 2))


def sampled(day: dt.date) -> bool:
    return day != GAP_DAY


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def history() -> list[MetricHistory]:
    """Every family, ready for ``prometheus_with_history``."""
    info: list[Point] = []
    size: list[Point] = []
    queries: list[Point] = []
    for ti, team in enumerate(TEAMS):
        total = 0
        if team == LATE_TEAM:  # its exporter starts at 23:00 the day before it arrives
            queries.append(Point({"team": team}, _at(ARRIVES - dt.timedelta(days=1), 23), 0))
        for day in [BASELINE, *DAYS]:
            if not active(team, day):
                continue
            for hour in HOURS:
                at = _at(day, hour)
                if team == RESET_TEAM and day == RESET_DAY and hour == 12:
                    total = 0  # restarted: the counter starts again
                total += day_queries(ti, day) // 4
                info.append(Point({"team": team}, at, 1))
                if not sampled(day):
                    continue
                queries.append(Point({"team": team}, at, total))
                for db in range(2):
                    labels = {"team": team, "db": f"{team}-db{db}"}
                    size.append(Point(labels, at, db_size(ti, db, day)))
    return [
        MetricHistory("pg_team_info", "gauge", "team presence", info),
        MetricHistory("pg_database_size_bytes", "gauge", "database size", size),
        MetricHistory("pg_queries", "counter", "queries", queries),
    ]


COMPUTE_RATES = [{"valid_from": "2026-01-01", "rate": "0.50"},
                 {"valid_from": "2026-02-15", "rate": "0.60"}]  # fmt: skip
BACKUP_FROM = dt.date(2026, 2, 5)


def cost_types() -> list[dict[str, Any]]:
    """The tenant's cost types (plain settings, as a settings.yaml would hold them)."""
    return [
        {"name": "PG_COMPUTE", "unit": "instance-hour", "rates": COMPUTE_RATES,
         "quantity": {"kind": "count_hours", "count": 3}},
        {"name": "PG_STORAGE", "unit": "GiB-hour",
         "rates": [{"valid_from": "2026-01-01", "rate": "0.0002"}],
         "quantity": {"kind": "gauge_average", "query": 'pg_database_size_bytes{db!=""}',
                      "multiplier": 24, "divisor": GIB},
         "allocation": {"rule": "usage", "query": "pg_database_size_bytes",
                        "kind": "gauge_average", "label": "team"}},
        {"name": "PG_QUERIES", "unit": "1000 queries",
         "rates": [{"valid_from": "2026-01-01", "rate": "0.003"}],
         "quantity": {"kind": "increase", "query": "pg_queries_total", "divisor": 1000},
         "allocation": {"rule": "usage", "query": "pg_queries_total", "label": "team",
                        "usage_ratio": "0.8"}},
        {"name": "PG_BACKUP", "unit": "instance-hour",
         "rates": [{"valid_from": BACKUP_FROM.isoformat(), "rate": "0.10"}],
         "quantity": {"kind": "count_hours", "count": 1}},
    ]  # fmt: skip


def identities() -> dict[str, Any]:
    """A static identity and the teams of ``pg_team_info`` on the days they appear."""
    return {
        "static": [{"id": STATIC}],
        "discovery": [{"query": "pg_team_info", "label": "team"}],
        "from_usage": False,
    }


def compute_rate(day: dt.date) -> Decimal:
    """The compute rates above, read by hand."""
    return Decimal("0.60") if day >= dt.date(2026, 2, 15) else Decimal("0.50")


def team_sizes(day: dt.date) -> dict[str, int]:
    """Each active team's bytes stored on the day."""
    return {t: sum(db_size(ti, db, day) for db in range(2))
            for ti, t in enumerate(TEAMS) if active(t, day)}  # fmt: skip


def team_queries(day: dt.date) -> dict[str, int]:
    """Each active team's queries of the day."""
    return {t: day_queries(ti, day) for ti, t in enumerate(TEAMS) if active(t, day)}


def present(day: dt.date) -> set[str]:
    """The identities active on the day: the static one and the teams with series."""
    return {STATIC} | {t for t in TEAMS if active(t, day)}
