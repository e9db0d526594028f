"""Attribution conserves money exactly and survives its stored form (DESIGN §5, §14)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.models import ChargebackRow, Identity, Resource
from chargeback.core.ownership import (
    UNASSIGNED,
    DateAttribution,
    Directory,
    Matcher,
    OwnershipError,
    OwnershipSettings,
    attribute,
    compile_rules,
    key_amounts,
)


def own(**data: Any) -> OwnershipSettings:
    """Ownership settings from plain data, as the YAML file gives them."""
    return OwnershipSettings.model_validate(data)


DAY = dt.date(2026, 3, 10)
IDS = [f"sa-{i}" for i in range(6)] + ["UNALLOCATED"]
RESOURCES = ["lkc-a", "lkc-b", None]
ENVS = ["env-1", "env-2", None]

Row = tuple[str, str | None, str | None, int]
rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(IDS),
        st.sampled_from(RESOURCES),
        st.sampled_from(ENVS),
        st.integers(min_value=-(10**15), max_value=10**15),
    ),
    max_size=80,
)
rules_strategy = st.lists(
    st.one_of(
        st.builds(
            lambda i, t: {"team": t, "match": {"identity_id": i}},
            st.sampled_from(IDS),
            st.sampled_from(["a", "b", "c"]),
        ),
        st.builds(
            lambda r, t: {"team": t, "match": {"cluster": r}},
            st.sampled_from(["lkc-a", "lkc-b"]),
            st.sampled_from(["a", "d"]),
        ),
        st.builds(
            lambda e, t, d: {
                "team": t,
                "valid_from": str(DAY + dt.timedelta(days=d)),
                "match": {"environment": e},
            },
            st.sampled_from(["env-1", "env-2"]),
            st.sampled_from(["e", "f"]),
            st.integers(-2, 2),
        ),
    ),
    max_size=8,
)


def _rows(spec: list[Row]) -> list[ChargebackRow]:
    return [
        ChargebackRow("t", DAY, f"l{n}", i, "P", "C", r, e, "usage", "rule", a, None)
        for n, (i, r, e, a) in enumerate(spec)
    ]


def _matcher(rules: list[dict[str, Any]]) -> Matcher:
    directory = Directory.of(
        [Resource("lkc-a", "kafka_cluster", "A", "env-1"), Resource("lkc-b", "kafka_cluster")],
        [Identity(i, "service_account", i) for i in IDS[:-1]],
    )
    return Matcher(compile_rules(own(rules=rules), "t"), directory)


class TestConservation:
    @settings(max_examples=200, deadline=None)
    @given(rows_strategy, rules_strategy)
    def test_team_totals_equal_allocated_total(
        self, spec: list[Row], rules: list[dict[str, Any]]
    ) -> None:
        """For any rows and rules, team totals sum to the date's allocated total exactly."""
        rows = _rows(spec)
        att = attribute("t", DAY, key_amounts(rows), _matcher(rules), calc_seq=1)
        totals = att.team_totals()
        assert sum(t.amount for t in totals) == sum(r.amount for r in rows)
        assert sum(t.rows for t in totals) == len(rows)

    @settings(max_examples=100, deadline=None)
    @given(rows_strategy, rules_strategy)
    def test_every_row_has_exactly_one_team(
        self, spec: list[Row], rules: list[dict[str, Any]]
    ) -> None:
        """Summing rows by the team decision_of gives each row gives the same team totals."""
        rows = _rows(spec)
        att = attribute("t", DAY, key_amounts(rows), _matcher(rules), calc_seq=1)
        by_row: dict[str, int] = {}
        for r in rows:
            team = att.decision_of(r.identity_id, r.resource_id, r.env_id).team
            by_row[team] = by_row.get(team, 0) + r.amount
        by_total: dict[str, int] = {}
        for t in att.team_totals():
            by_total[t.team] = by_total.get(t.team, 0) + t.amount
        assert {k: v for k, v in by_row.items() if v} == {k: v for k, v in by_total.items() if v}

    @settings(max_examples=100, deadline=None)
    @given(rows_strategy, rules_strategy)
    def test_stored_form_round_trips(self, spec: list[Row], rules: list[dict[str, Any]]) -> None:
        """encode/decode gives back the same shares and names."""
        att = attribute("t", DAY, key_amounts(_rows(spec)), _matcher(rules), calc_seq=3)
        back = DateAttribution.decode("t", DAY, 7, 3, att.encode())
        assert back.shares == att.shares
        assert back.names == att.names
        assert back.team_totals() == att.team_totals()

    def test_mismatch_with_expected_total_raises(self) -> None:
        """A date whose allocated total differs from the shares' sum is refused, not stored."""
        rows = _rows([("sa-1", "lkc-a", "env-1", 5)])
        with pytest.raises(OwnershipError, match="team totals sum to 5"):
            attribute("t", DAY, key_amounts(rows), _matcher([]), calc_seq=1, expected_total=6)

    def test_no_rules_everything_unassigned(self) -> None:
        """Without rules the whole date is UNASSIGNED and every identity is unmapped."""
        rows = _rows([("sa-1", "lkc-a", "env-1", 5), ("sa-2", None, None, 7)])
        att = attribute("t", DAY, key_amounts(rows), _matcher([]), calc_seq=1)
        assert att.unassigned == att.total == 12
        assert att.unmapped_identities() == ["sa-1", "sa-2"]
        assert [t.team for t in att.team_totals()] == [UNASSIGNED]
        assert att.names == {"sa-1": "sa-1", "sa-2": "sa-2", "lkc-a": "A"}
