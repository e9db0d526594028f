"""The ``budgets`` settings: a monthly amount per tenant and team, with thresholds (DESIGN §17).

Shape (``settings.yaml``; every key optional)::

    budgets:
      forecast_days: 7               # the run-rate is the mean of the month's last N days
      rules:
        - name: payments-monthly     # unique; the gauges' ``budget`` label
          tenant: prod
          team: payments             # a team of the ownership rules (DESIGN §14)
          amount: "1200.00"          # per calendar month, in the bill's currency
          thresholds: [50, 80, 100]  # percent of the amount spent
          forecast_threshold: 100    # percent of the amount the month-end forecast reaches

A bad budget is an error naming it, at load (exit 2) or on SIGHUP (rejected).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chargeback.core.money import to_minor

__all__ = ["BudgetRule", "BudgetSettings"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetRule(_Model):
    """One team's monthly budget in one tenant."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    tenant: str = Field(min_length=1)
    team: str = Field(min_length=1)
    amount: Decimal = Field(gt=0, description="per calendar month, in the bill's currency")
    thresholds: tuple[Decimal, ...] = (Decimal(50), Decimal(80), Decimal(100))
    forecast_threshold: Decimal | None = Field(default=Decimal(100), gt=0)

    @field_validator("thresholds")
    @classmethod
    def _ordered(cls, value: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if any(t <= 0 for t in value):
            raise ValueError("thresholds are percentages above 0")
        if list(value) != sorted(set(value)):
            raise ValueError("thresholds must be distinct and ascending")
        return value

    @property
    def amount_minor(self) -> int:
        """The amount in minor units."""
        return to_minor(self.amount)


class BudgetSettings(_Model):
    """Every budget, and how the month-end forecast is made."""

    forecast_days: int = Field(default=7, ge=1, le=31)
    rules: tuple[BudgetRule, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> BudgetSettings:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"budget {rule.name!r} is defined twice")
            seen.add(rule.name)
        return self

    def for_tenant(self, tenant: str) -> list[BudgetRule]:
        """The tenant's budgets, in settings order."""
        return [r for r in self.rules if r.tenant == tenant]
