"""The ownership store on every backend: versions, attributions, totals, re-emission."""

from __future__ import annotations

import datetime as dt
from typing import Any

from chargeback.core.models import Identity, Resource
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

DAY = dt.date(2026, 3, 1)
NOW = dt.datetime(2026, 3, 5, 12, tzinfo=dt.UTC)


def _rules(team: str) -> Any:
    settings = OwnershipSettings.model_validate(
        {
            "dimensions": ["cost_centre"],
            "rules": [
                {
                    "team": team,
                    "dimensions": {"cost_centre": "CC-1"},
                    "match": {"identity_id": "sa-1"},
                },
            ],
        }
    )
    return compile_rules(settings, "t1")


async def _committed(backend: StorageBackend, line_factory: Any, rows_factory: Any,
                     commit_date: Any) -> Any:  # fmt: skip
    line = line_factory("l1", 1_000_000_007, day=DAY)
    rows = rows_factory("t1", line, ["sa-1", "sa-2", "UNALLOCATED"], [3, 2, 1])
    state = await commit_date(backend, "t1", DAY, [line], rows)
    return state, rows


def _matcher(rules: Any) -> Matcher:
    return Matcher(
        rules,
        Directory.of(
            [Resource("lkc-1", "kafka_cluster", "orders-prod", "env-1")],
            [Identity("sa-1", "service_account", "writer"), Identity("sa-2", "user", "Ada")],
        ),
    )


class TestOwnershipStore:
    async def test_rule_versions_are_numbered_per_fingerprint(
        self, backend: StorageBackend
    ) -> None:
        """The same rules keep their number; new rules get the next one."""
        store = ownership_store(backend)
        assert await store.rule_version("t1", _rules("a"), NOW) == 1
        assert await store.rule_version("t1", _rules("b"), NOW) == 2
        assert await store.rule_version("t1", _rules("a"), NOW) == 1
        assert await store.rule_version("t2", _rules("b"), NOW) == 1

    async def test_attribution_round_trips_with_totals(
        self, backend: StorageBackend, line_factory: Any, rows_factory: Any, commit_date: Any
    ) -> None:
        """A stored attribution reads back whole; its team totals equal the allocated total."""
        state, rows = await _committed(backend, line_factory, rows_factory, commit_date)
        store = ownership_store(backend)
        att = attribute("t1", DAY, key_amounts(rows), _matcher(_rules("a")),
                        calc_seq=state.calc_seq, expected_total=state.allocated_total)  # fmt: skip
        await store.write_attribution(att, rule_version=1, attributed_at=NOW, reemit=False)
        back = await store.read_attribution("t1", DAY)
        assert back is not None
        assert back.shares == att.shares
        assert back.names == {"sa-1": "writer", "sa-2": "Ada", "lkc-1": "orders-prod"}
        totals = await store.team_totals("t1", DAY, DAY + dt.timedelta(days=1))
        assert totals[DAY] == att.team_totals()
        assert sum(t.amount for t in totals[DAY]) == state.allocated_total == 1_000_000_007
        assert {t.team: t.dimensions for t in totals[DAY]}["a"] == (("cost_centre", "CC-1"),)
        states = await store.attribution_states("t1")
        assert states[DAY].rule_version == 1
        assert states[DAY].calc_seq == state.calc_seq
        assert states[DAY].unassigned == att.unassigned
        assert await store.read_attribution("t1", DAY + dt.timedelta(days=1)) is None

    async def test_reemit_marks_the_date_pending_for_every_emitter(
        self, backend: StorageBackend, line_factory: Any, rows_factory: Any, commit_date: Any
    ) -> None:
        """A re-attribution with reemit=True makes the date pending again, calc_seq unchanged."""
        state, rows = await _committed(backend, line_factory, rows_factory, commit_date)
        for emitter in ("csv", "prometheus"):
            await backend.record_emission("t1", emitter, DAY, state.calc_seq, emitted_at=NOW)
        assert await backend.pending_emissions("t1", "csv") == []
        store = ownership_store(backend)
        att = attribute("t1", DAY, key_amounts(rows), _matcher(_rules("b")),
                        calc_seq=state.calc_seq)  # fmt: skip
        await store.write_attribution(att, rule_version=2, attributed_at=NOW, reemit=False)
        assert await backend.pending_emissions("t1", "csv") == []
        await store.write_attribution(att, rule_version=2, attributed_at=NOW, reemit=True)
        for emitter in ("csv", "prometheus"):
            assert await backend.pending_emissions("t1", emitter) == [(DAY, state.calc_seq)]
        await store.set_rule_version("t1", [DAY], 3)
        assert (await store.attribution_states("t1"))[DAY].rule_version == 3
