"""Attribution after commit, and re-attribution after a rule change (DESIGN §14).

The example plugin over a real SQLite file: every committed date is attributed with
the rule version used, team totals equal the allocated totals, a service account that
moves teams mid-window is charged to each team for its own days, and a rule change
re-attributes and re-emits only the dates it affects, never touching a chargeback row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import NamedEmitter, RunStatus, TenantConfig
from chargeback.core.models import ChargebackRow
from chargeback.core.ownership import OwnershipSettings, compile_rules
from chargeback.core.ownership.attributor import Attributor
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend

WINDOW = [dt.date(2026, 3, d) for d in range(2, 9)]
START, END = WINDOW[0], WINDOW[-1] + dt.timedelta(days=1)
MOVE = dt.date(2026, 3, 5)
"""sa-1 belongs to team 'orders' up to 2026-03-04 and to 'search' from this day."""

BASE_RULES: list[dict[str, Any]] = [
    {"name": "sa-1-old", "team": "orders", "valid_until": "2026-03-04",
     "match": {"identity_id": "sa-1"}},
    {"name": "sa-1-new", "team": "search", "valid_from": "2026-03-05",
     "match": {"identity_id": "sa-1"}},
    {"name": "sa-2", "team": "payments", "dimensions": {"cost_centre": "CC-1"},
     "match": {"identity_id": "sa-2"}},
    {"name": "cluster-1", "team": "platform", "match": {"cluster": "c-1"}},
]  # fmt: skip


class Recorder:
    """An emitter that records which dates it was given."""

    def __init__(self) -> None:
        self.days: list[dt.date] = []

    async def __call__(self, tenant_id: str, day: dt.date, rows: Sequence[ChargebackRow]) -> None:
        self.days.append(day)


def rules_of(rules: list[dict[str, Any]]) -> Any:
    settings = OwnershipSettings.model_validate({"dimensions": ["cost_centre"], "rules": rules})
    return compile_rules(settings, "acme")


class Clock:
    def __call__(self) -> dt.datetime:
        return dt.datetime(2026, 3, 10, 6, 0, tzinfo=dt.UTC)


def runtime(
    registry: PluginRegistry,
    storage: SQLiteBackend,
    recorder: Recorder,
    rules: list[dict[str, Any]] | None,
) -> TenantRuntime:
    config = TenantConfig(
        name="acme", ecosystem="example", lookback_days=8, cutoff_days=2, recalc_days=2
    )
    attributor = None
    if rules is not None:
        attributor = Attributor(
            "acme", rules_of(rules), ownership_store(storage), storage, clock=Clock()
        )
    return TenantRuntime(
        config,
        registry.create("example"),
        storage,
        [NamedEmitter("rec", recorder)],
        clock=Clock(),
        attributor=attributor,
    )


async def teams_by_identity(storage: SQLiteBackend, day: dt.date) -> dict[str, set[str]]:
    att = await ownership_store(storage).read_attribution("acme", day)
    assert att is not None
    out: dict[str, set[str]] = {}
    for s in att.shares:
        out.setdefault(s.key.identity_id, set()).add(s.decision.team)
    return out


class TestAttributionAfterCommit:
    async def test_every_date_attributed_and_conserved(
        self, registry: PluginRegistry, storage: SQLiteBackend
    ) -> None:
        """Each committed date is attributed under one rule version; team totals are exact."""
        rt = runtime(registry, storage, Recorder(), BASE_RULES)
        summary = await rt.run("test")
        assert summary.status is RunStatus.SUCCESS, summary.error
        store = ownership_store(storage)
        states = await storage.get_date_states("acme", START, END)
        attributed = await store.attribution_states("acme")
        assert set(attributed) == set(states) == set(WINDOW)
        assert {a.rule_version for a in attributed.values()} == {1}
        totals = await store.team_totals("acme", START, END)
        for day, state in states.items():
            assert attributed[day].calc_seq == state.calc_seq
            assert sum(t.amount for t in totals[day]) == state.allocated_total
            rows = await storage.read_rows("acme", day)
            assert sum(t.rows for t in totals[day]) == len(rows)
        await rt.aclose()

    async def test_identity_moving_teams_is_charged_to_each_for_its_days(
        self, registry: PluginRegistry, storage: SQLiteBackend
    ) -> None:
        """sa-1's cost goes to 'orders' before MOVE and to 'search' from MOVE on."""
        rt = runtime(registry, storage, Recorder(), BASE_RULES)
        await rt.run("test")
        for day in WINDOW:
            teams = await teams_by_identity(storage, day)
            assert teams["sa-1"] == ({"orders"} if day < MOVE else {"search"})
            assert teams["sa-2"] == {"payments"}
        att = await ownership_store(storage).read_attribution("acme", WINDOW[0])
        assert att is not None
        dims = {t.team: t.dimensions for t in att.team_totals()}
        assert dims["payments"] == (("cost_centre", "CC-1"),)
        await rt.aclose()


class TestReattribution:
    async def test_rule_change_reemits_only_affected_dates(
        self, registry: PluginRegistry, storage: SQLiteBackend
    ) -> None:
        """A rule valid on one date only re-attributes and re-emits that date; rows stay."""
        recorder = Recorder()
        rt = runtime(registry, storage, recorder, BASE_RULES)
        await rt.run("test")
        rows_before = {d: await storage.read_rows("acme", d) for d in WINDOW}
        seqs_before = {d: s.calc_seq for d, s in (await storage.get_date_states(
            "acme", START, END)).items()}  # fmt: skip
        one_day = dt.date(2026, 3, 6)
        new_rule = {"name": "sa-3-once", "team": "fraud", "valid_from": str(one_day),
                    "valid_until": str(one_day), "match": {"identity_id": "sa-3"}}  # fmt: skip
        assert rt.attributor is not None
        assert rt.attributor.replace_rules(rules_of([*BASE_RULES, new_rule]))
        recorder.days.clear()
        await rt.reattribute()
        assert recorder.days == [one_day]
        states = await ownership_store(storage).attribution_states("acme")
        assert {d: a.rule_version for d, a in states.items()} == dict.fromkeys(WINDOW, 2)
        assert (await teams_by_identity(storage, one_day))["sa-3"] == {"fraud"}
        assert "fraud" not in (await teams_by_identity(storage, WINDOW[0]))["sa-3"]
        assert {d: await storage.read_rows("acme", d) for d in WINDOW} == rows_before
        after = await storage.get_date_states("acme", START, END)
        assert {d: s.calc_seq for d, s in after.items()} == seqs_before
        # Nothing left to do: a second pass re-emits nothing.
        recorder.days.clear()
        await rt.reattribute()
        assert recorder.days == []
        await rt.aclose()

    async def test_dates_calculated_without_ownership_are_attributed_later(
        self, registry: PluginRegistry, storage: SQLiteBackend
    ) -> None:
        """Dates committed before ownership existed get attributed and re-emitted by a run."""
        first = runtime(registry, storage, Recorder(), None)
        await first.run("test")
        await first.aclose()
        assert await ownership_store(storage).attribution_states("acme") == {}
        recorder = Recorder()
        second = runtime(registry, storage, recorder, BASE_RULES)
        summary = await second.run("test")
        assert summary.dates_calculated == 0
        assert set(await ownership_store(storage).attribution_states("acme")) == set(WINDOW)
        assert sorted(recorder.days) == WINDOW
        await second.aclose()
