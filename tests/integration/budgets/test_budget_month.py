"""Budgets over a simulated month: the sim's clock moves day by day, one run a day.

The Confluent Cloud plugin runs in a real TenantRuntime against ccloud_sim (over ASGI)
into a SQLite file, with ownership attribution, from 2026-03-04 to 2026-04-03 (so the
calculated days are March 1..31 with a 3-day cutoff). After each run the daemon's
collector re-evaluates the month; the test checks every figure against its own SQL over
the stored team totals: each threshold is crossed on the first day the running total
reaches it, the forecast is the stated run-rate method, and ``/api/v1/budgets`` and
``/forecast`` say the same as ``/metrics``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ccloud_sim import SimClock, create_app
from chargeback.core.budgets import BudgetSettings
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.money import MINOR_UNITS_PER_UNIT, format_amount, to_minor
from chargeback.core.ownership import OwnershipSettings, compile_rules
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin
from chargeback.service import api
from chargeback.service.api._auth import ApiTokens
from chargeback.service.budget_metrics import BudgetMetrics
from chargeback.service.http import make_app
from chargeback.settings import AppSettings

TENANT = "acme"
TEAM = "payments"
START = dt.datetime(2026, 3, 4, 12, tzinfo=dt.UTC)
DAYS = 31
OWNERSHIP = {
    "rules": [
        {"name": "by-name", "team": "{team}",
         "match": {"identity_name": "^(?:svc-)?(?P<team>[a-z]+)-"}},
    ]
}  # fmt: skip


def stored_daily(db: Path, team: str) -> dict[dt.date, int]:
    """The team's amount per attributed date of March, by the test's own SQL."""
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT d.date, COALESCE(SUM(t.amount), 0) FROM ownership_dates d"
            " LEFT JOIN ownership_team_totals t"
            "  ON t.tenant_id = d.tenant_id AND t.date = d.date AND t.team = ?"
            " WHERE d.tenant_id = ? AND d.date LIKE '2026-03-%' GROUP BY d.date",
            (team, TENANT),
        ).fetchall()
    return {dt.date.fromisoformat(str(d)): int(a) for d, a in rows}


def gauges(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def budget_settings(amount: int) -> BudgetSettings:
    return BudgetSettings.model_validate({
        "forecast_days": 5,
        "rules": [{"name": "pay", "tenant": TENANT, "team": TEAM,
                   "amount": format_amount(amount),
                   "thresholds": [50, 80, 100], "forecast_threshold": 100}],
    })  # fmt: skip


def expected_forecast(daily: dict[dt.date, int], last_n: int) -> int:
    days = sorted(daily)
    rate = Fraction(sum(daily[d] for d in days[-last_n:]), len(days[-last_n:]))
    return sum(daily.values()) + round(rate * (DAYS - len(days)))


async def run_month(db: Path) -> list[dict[str, Any]]:
    """Run one day at a time; after each run, what the collector and the API say."""
    clock = SimClock(START)
    sim = create_app(seed=11, scale="small", clock=clock, metrics_retention_days=None)

    async def no_sleep(_: float) -> None:
        return None

    config = TenantConfig(
        name=TENANT, ecosystem="confluent_cloud",
        plugin_settings={
            "api_key": "SIMKEY", "api_secret": "SIMSECRET", "base_url": "http://sim",
            "telemetry_url": "http://sim", "flink_url": "http://sim",
            "http": {"requests_per_second": None, "max_retries": 8},
        },
        lookback_days=4, cutoff_days=3,
    )  # fmt: skip
    registry = CollectorRegistry()
    metrics = BudgetMetrics(registry)
    seen: list[dict[str, Any]] = []
    async with SQLiteBackend(db) as storage:
        rules = compile_rules(OwnershipSettings.model_validate(OWNERSHIP), TENANT)
        attributor = Attributor(TENANT, rules, ownership_store(storage), storage, clock=clock.now)
        plugin = ConfluentCloudPlugin(transport=httpx.ASGITransport(app=sim), sleep=no_sleep)
        runtime = TenantRuntime(config, plugin, storage, clock=clock.now, attributor=attributor)
        try:
            for _ in range(DAYS):
                summary = await runtime.run()
                assert summary.status is RunStatus.SUCCESS, summary
                if not seen:  # a budget the month will cross: 16 times the first day
                    first_day = stored_daily(db, TEAM)
                    metrics.configure(budget_settings(16 * sum(first_day.values())))
                await metrics.refresh(storage, TENANT)
                seen.append({"daily": stored_daily(db, TEAM), "gauges": gauges(registry)})
                clock.advance(dt.timedelta(days=1))
        finally:
            await runtime.aclose()
    seen[-1]["settings"] = metrics.settings
    return seen


async def api_answers(db: Path, settings: BudgetSettings) -> tuple[Any, Any]:
    app_settings = AppSettings.model_validate(
        {"budgets": settings, "tenants": {TENANT: {"ecosystem": "confluent_cloud"}}}
    )
    app = make_app(
        _Source(), _Health(), storage=lambda: SQLiteBackend(db, read_only=True),
        routes=api.routes(app_settings, tokens=ApiTokens.from_text("")),
    )  # fmt: skip
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        budgets = await c.get("/api/v1/budgets", params={"tenant": TENANT})
        forecast = await c.get("/api/v1/forecast", params={"tenant": TENANT, "month": "2026-03"})
        bad = await c.get("/api/v1/budgets", params={"tenant": TENANT, "month": "2026-13"})
    await app.aclose()
    assert budgets.status_code == 200, budgets.text
    assert forecast.status_code == 200, forecast.text
    assert bad.status_code == 400
    assert bad.json()["parameter"] == "month"
    return budgets.json(), forecast.json()


class _Source:
    def exposition(self) -> bytes:
        return b""

    def exposition_gzip(self) -> bytes:
        return b""


class _Health:
    def health(self) -> dict[str, object]:
        return {}

    def readiness(self) -> list[str]:
        return []


def ratio_key(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("budget", "pay"), ("team", TEAM), ("tenant", TENANT)))


async def test_thresholds_cross_in_order_over_a_simulated_month(tmp_path: Path) -> None:
    """50, 80 and 100 % are crossed on the days the stored totals say; every day's gauges
    are that day's committed month (restated days included); the API agrees at month end."""
    db = tmp_path / "chargeback.db"
    seen = await run_month(db)
    daily = stored_daily(db, TEAM)
    assert sorted(daily) == [dt.date(2026, 3, d) for d in range(1, 32)]
    settings: BudgetSettings = seen[-1]["settings"]
    budget = to_minor(settings.rules[0].amount)
    running, crossed_on = 0, {}
    for day in sorted(daily):
        running += daily[day]
        for pct in (50, 80, 100):
            if pct not in crossed_on and running * 100 >= budget * pct:
                crossed_on[pct] = day
    assert sorted(crossed_on) == [50, 80, 100], "the month crosses every threshold"
    assert crossed_on[50] < crossed_on[80] < crossed_on[100]

    for snap in seen:  # each day's gauges: the month so far, as committed that day
        so_far = snap["daily"]
        ratio = snap["gauges"][ratio_key("chargeback_budget_spent_ratio")]
        assert ratio == float(Fraction(sum(so_far.values()), budget))
        assert snap["gauges"][ratio_key("chargeback_budget_amount")] == budget / 1e9
        fc = snap["gauges"][("chargeback_forecast_month_end", (("team", TEAM), ("tenant", TENANT)))]
        assert fc == expected_forecast(so_far, 5) / MINOR_UNITS_PER_UNIT

    body, forecast = await api_answers(db, settings)
    (b,) = body["budgets"]
    assert body["month"] == "2026-03"
    assert body["complete"]
    assert body["missing_days"] == []
    assert to_minor(b["spent"]) == sum(daily.values())
    assert {int(t["percent"]): t["crossed_on"] for t in b["thresholds"]} == {
        p: d.isoformat() for p, d in crossed_on.items()
    }
    assert b["forecast"]["unobserved_days"] == 0
    assert to_minor(b["forecast"]["forecast"]) == sum(daily.values())
    assert b["forecast_crossed"] is True
    teams = {t["team"]: t for t in forecast["teams"]}
    assert to_minor(teams[TEAM]["forecast"]) == sum(daily.values())
    with closing(sqlite3.connect(db)) as conn:
        (billed,) = conn.execute(
            "SELECT SUM(amount) FROM ownership_team_totals"
            " WHERE tenant_id = ? AND date LIKE '2026-03-%'",
            (TENANT,),
        ).fetchone()
    assert sum(to_minor(t["spent"]) for t in teams.values()) == billed
