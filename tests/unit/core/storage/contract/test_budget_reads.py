"""Budgets read a month's stored team totals the same way on every backend (DESIGN §17)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chargeback.core.budgets import BudgetSettings, read_month
from chargeback.core.models import Identity
from chargeback.core.ownership import (
    Directory,
    Matcher,
    OwnershipSettings,
    attribute,
    compile_rules,
    key_amounts,
)
from chargeback.core.storage.backend import StorageBackend
from chargeback.core.storage.ownership import ownership_store

NOW = dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)
BUDGETS = BudgetSettings.model_validate(
    {"forecast_days": 2,
     "rules": [{"name": "o", "tenant": "t1", "team": "orders", "amount": "10"}]}
)  # fmt: skip


async def test_month_of_attributed_days_with_one_missing(
    backend: StorageBackend, line_factory: Any, rows_factory: Any, commit_date: Any
) -> None:
    """Days 1, 2 and 4 attributed (3 is committed but not): orders spent 3 + 4 + 5 of a
    10 budget (50 % crossed on day 2, 80 and 100 % on day 4), day 3 missing, the
    forecast 12 + 4.5 x 28."""
    rules = compile_rules(
        OwnershipSettings.model_validate(
            {"rules": [{"team": "orders", "match": {"identity_id": "sa-1"}}]}
        ),
        "t1",
    )
    matcher = Matcher(rules, Directory.of([], [Identity("sa-1", "service_account", "w")]))
    store = ownership_store(backend)
    for day, amount in ((1, 3), (2, 4), (3, 9), (4, 5)):
        date = dt.date(2026, 3, day)
        line = line_factory(f"l{day}", (amount + 1) * 10**9, day=date)
        rows = rows_factory("t1", line, ["sa-1", "sa-2"], [amount, 1])
        state = await commit_date(backend, "t1", date, [line], rows)
        if day == 3:
            continue
        att = attribute("t1", date, key_amounts(rows), matcher, calc_seq=state.calc_seq,
                        expected_total=state.allocated_total)  # fmt: skip
        await store.write_attribution(att, rule_version=1, attributed_at=NOW, reemit=False)
    view = await read_month(backend, "t1", dt.date(2026, 3, 15), BUDGETS)
    assert view.observed == (dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 4))
    (status,) = view.budgets
    assert status.forecast.spent == 12 * 10**9
    assert [t.crossed_on for t in status.thresholds] == [
        dt.date(2026, 3, 2),
        *[dt.date(2026, 3, 4)] * 2,
    ]
    assert status.missing_days == (dt.date(2026, 3, 3),)
    assert status.forecast.point == 12 * 10**9 + 45 * 28 * 10**8
    assert view.forecasts()["UNASSIGNED"].spent == 3 * 10**9
