"""The budget arithmetic: spent, thresholds and the run-rate forecast (DESIGN §17)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.budgets import BudgetRule, BudgetSettings, evaluate_budget, forecast_month
from chargeback.settings import AppSettings

MARCH = dt.date(2026, 3, 1)
DAYS = [dt.date(2026, 3, d) for d in range(1, 32)]


def rule(amount: str = "100", **extra: object) -> BudgetRule:
    return BudgetRule.model_validate(
        {"name": "b", "tenant": "t", "team": "payments", "amount": amount, **extra}
    )


amounts = st.integers(min_value=-(10**12), max_value=10**13)
months = st.integers(min_value=1, max_value=31).flatmap(
    lambda n: st.tuples(
        st.lists(amounts, min_size=n, max_size=n),
        st.sets(st.sampled_from(DAYS[:n]), min_size=1),
    )
)


class TestForecast:
    def test_the_run_rate_of_the_last_days(self) -> None:
        """10 days at 1, 2, ..., 10; the rate is the mean of the last 4 (8.5) x 21 days."""
        daily = {DAYS[i]: (i + 1) * 10**9 for i in range(10)}
        fc = forecast_month(daily, list(daily), MARCH, 4)
        assert fc.spent == 55 * 10**9
        assert fc.point == 55 * 10**9 + Fraction(85, 10) * 21 * 10**9
        assert (fc.low, fc.high) == (55 * 10**9 + 7 * 21 * 10**9, 55 * 10**9 + 10 * 21 * 10**9)
        assert fc.rate_days == tuple(DAYS[6:10])
        assert (fc.observed_days, fc.unobserved_days) == (10, 21)

    def test_no_observed_day_is_no_forecast(self) -> None:
        """A month with no committed day has no forecast, not a zero one."""
        fc = forecast_month({}, [], MARCH, 7)
        assert (fc.spent, fc.point, fc.low, fc.high) == (0, None, None, None)
        assert fc.unobserved_days == 31

    def test_an_observed_day_without_the_team_counts_zero(self) -> None:
        """An attributed day on which the team spent nothing is a 0 in the rate."""
        fc = forecast_month({DAYS[0]: 6}, DAYS[:3], MARCH, 3)
        assert fc.point == 6 + round(Fraction(6, 3) * 28)
        assert fc.low == 6

    @given(months, st.integers(min_value=1, max_value=31))
    def test_interval_holds_the_point_and_a_full_month_is_exact(
        self, month: tuple[list[int], set[dt.date]], last_n: int
    ) -> None:
        """low <= point <= high, and a fully observed month forecasts what it spent."""
        values, observed = month
        daily = {DAYS[i]: v for i, v in enumerate(values)}
        fc = forecast_month(daily, sorted(observed), MARCH, last_n)
        assert fc.spent == sum(daily.get(d, 0) for d in observed)
        assert fc.low is not None
        assert fc.point is not None
        assert fc.high is not None
        assert fc.low <= fc.point <= fc.high
        assert fc.observed_days + fc.unobserved_days == 31
        if len(observed) == 31:
            assert fc.low == fc.point == fc.high == fc.spent


class TestThresholds:
    @given(months, st.lists(st.integers(1, 300), min_size=1, max_size=4, unique=True))
    def test_crossed_on_the_first_day_the_running_total_reaches_it(
        self, month: tuple[list[int], set[dt.date]], percents: list[int]
    ) -> None:
        """Each threshold's day, checked against a running Decimal total."""
        values, observed = month
        daily = {DAYS[i]: v for i, v in enumerate(values)}
        r = rule("1234.5", thresholds=sorted(percents))
        status = evaluate_budget(r, daily, sorted(observed), MARCH, last_n=7)
        budget = Decimal("1234.5")
        for t in status.thresholds:
            running, first = Decimal(0), None
            for day in sorted(observed):
                running += Decimal(daily.get(day, 0)).scaleb(-9)
                if running >= budget * t.percent / 100:
                    first = day
                    break
            assert t.crossed_on == first
            assert t.crossed is (first is not None)
        assert status.spent_ratio == Fraction(status.forecast.spent, 1234_500_000_000)

    def test_forecast_threshold_and_missing_days(self) -> None:
        """Days 1..10 at 5 of a 100 budget: 50 % crossed on day 10, the forecast 155
        crosses 100 %; day 4 not attributed is missing, and estimated."""
        observed = [d for d in DAYS[:10] if d.day != 4]
        daily = dict.fromkeys(observed, 5 * 10**9)
        status = evaluate_budget(rule(), daily, observed, MARCH, last_n=7)
        assert [(t.percent, t.crossed_on) for t in status.thresholds] == [
            (Decimal(50), None), (Decimal(80), None), (Decimal(100), None),
        ]  # fmt: skip
        assert status.forecast.point == 45 * 10**9 + 22 * 5 * 10**9
        assert status.forecast_crossed is True
        assert status.missing_days == (dt.date(2026, 3, 4),)
        assert status.as_of == DAYS[9]


class TestSettings:
    @pytest.mark.parametrize(
        ("extra", "message"),
        [
            ({"thresholds": [80, 50]}, "ascending"),
            ({"thresholds": [0, 50]}, "above 0"),
            ({"amount": "0"}, "greater than 0"),
            ({"name": "has space"}, "pattern"),
        ],
    )
    def test_a_bad_budget_is_refused(self, extra: dict[str, object], message: str) -> None:
        """A bad budget is a validation error naming what is wrong."""
        with pytest.raises(pydantic.ValidationError, match=message):
            rule(**extra)  # type: ignore[arg-type]

    def test_names_are_unique_and_rules_are_per_tenant(self) -> None:
        """Two budgets may not share a name; a tenant sees only its own."""
        one = {"name": "b", "tenant": "t", "team": "x", "amount": "1"}
        with pytest.raises(pydantic.ValidationError, match="defined twice"):
            BudgetSettings.model_validate({"rules": [one, one]})
        s = BudgetSettings.model_validate({"rules": [one, {**one, "name": "c", "tenant": "u"}]})
        assert [r.name for r in s.for_tenant("u")] == ["c"]

    def test_a_budget_of_an_unknown_tenant_is_a_settings_error(self) -> None:
        """A budget must name a configured tenant (a typo would otherwise never alert)."""
        budgets = {"rules": [{"name": "b", "tenant": "prdo", "team": "x", "amount": "1"}]}
        tenants = {"prod": {"ecosystem": "confluent_cloud"}}
        with pytest.raises(pydantic.ValidationError, match="tenant 'prdo' is not configured"):
            AppSettings.model_validate({"budgets": budgets, "tenants": tenants})
        ok = AppSettings.model_validate({"budgets": {"rules": []}, "tenants": tenants})
        assert ok.budgets.rules == ()
