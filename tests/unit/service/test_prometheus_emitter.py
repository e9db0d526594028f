"""The prometheus emitter: chargeback series from a snapshot of storage (DESIGN §8)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chargeback.core.emitters.prometheus import (
    PrometheusEmitter,
    TeamView,
    _families,
    _publish,
    _render,
    _TenantSnapshot,
    make_prometheus_emitter,
)
from chargeback.core.emitters.registry import create
from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.money import to_minor
from chargeback.core.ownership import (
    Directory,
    Matcher,
    OwnershipSettings,
    attribute,
    compile_rules,
    key_amounts,
)
from chargeback.core.storage.backend import CostTotal
from chargeback.core.storage.ownership import ownership_store
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError

NOW = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    """A real SQLite file in tmp_path."""
    backend = SQLiteBackend(tmp_path / "cb.db")
    await backend.open()
    yield backend
    await backend.close()


async def commit(storage: SQLiteBackend, tenant: str, day: dt.date, shares: dict[str, str]) -> None:
    """Commit one line of the summed amount split as ``shares`` (identity -> amount)."""
    total = sum(to_minor(v) for v in shares.values())
    line = BillingLineItem(f"l-{day}", day, "KAFKA_BASE", "KAFKA", total, "lkc-1", "env-1")
    rows = [
        ChargebackRow(
            tenant,
            day,
            line.line_id,
            ident,
            "KAFKA_BASE",
            "KAFKA",
            "lkc-1",
            "env-1",
            "shared",
            "even",
            to_minor(v),
            None,
        )
        for ident, v in shares.items()
    ]
    await storage.commit_date(
        tenant,
        day,
        lines=[line],
        rows=rows,
        plugin_rows=[],
        billing_fingerprint=str(day),
        settings_fingerprint="s",
        inventory_fingerprint="i",
        calculated_at=NOW,
    )


class _Fixed(Collector):
    """A collector over fixed families, to render them with the library's encoder."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


class TestPrometheusEmitter:
    """The emitter serves the latest day and month to date per identity, from memory."""

    async def test_refresh_builds_latest_day_and_month_to_date(
        self, storage: SQLiteBackend
    ) -> None:
        """Latest day and month-to-date sums come from storage at refresh."""
        await commit(storage, "acme", dt.date(2026, 2, 28), {"sa-1": "100"})
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "1.5", "sa-2": "2.25"})
        await commit(storage, "acme", dt.date(2026, 3, 2), {"sa-1": "0.5"})
        emitter = PrometheusEmitter(storage)
        reg = CollectorRegistry()
        reg.register(emitter)
        await emitter.refresh()
        labels = {
            "tenant": "acme",
            "product_type": "KAFKA_BASE",
            "cost_type": "shared",
            "env": "env-1",
        }
        assert sample(reg, "chargeback_cost_latest_day", identity="sa-1", **labels) == 0.5
        assert sample(reg, "chargeback_cost_latest_day", identity="sa-2", **labels) is None
        assert sample(reg, "chargeback_cost_month_to_date", identity="sa-1", **labels) == 2.0
        assert sample(reg, "chargeback_cost_month_to_date", identity="sa-2", **labels) == 2.25
        ts = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="acme") == ts

    async def test_collect_reads_only_the_snapshot(self, storage: SQLiteBackend) -> None:
        """After storage is closed a scrape still answers from the snapshot."""
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "3"})
        emitter = PrometheusEmitter(storage)
        await emitter.refresh()
        await storage.close()
        reg = CollectorRegistry()
        reg.register(emitter)
        assert b"chargeback_cost_latest_day{" in generate_latest(reg)

    async def test_emit_then_flush_refreshes_the_tenant(self, storage: SQLiteBackend) -> None:
        """Emits mark the tenant; the flush at the end of the run brings the new day in."""
        emitter = PrometheusEmitter(storage)
        reg = CollectorRegistry()
        reg.register(emitter)
        await emitter.refresh()
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="acme") is None
        await commit(storage, "acme", dt.date(2026, 3, 3), {"sa-9": "7"})
        await emitter("acme", dt.date(2026, 3, 3), [])
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="acme") is None
        await emitter.flush()
        ts = dt.datetime(2026, 3, 3, tzinfo=dt.UTC).timestamp()
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="acme") == ts

    async def test_set_tenants_limits_series(self, storage: SQLiteBackend) -> None:
        """Tenants removed from the settings disappear from the series."""
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "1"})
        await commit(storage, "beta", dt.date(2026, 3, 1), {"sa-1": "1"})
        emitter = PrometheusEmitter(storage)
        reg = CollectorRegistry()
        reg.register(emitter)
        await emitter.refresh()
        emitter.set_tenants(["beta"])
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="acme") is None
        assert sample(reg, "chargeback_latest_day_timestamp_seconds", tenant="beta") is not None

    async def test_registry_creates_it_with_storage(self, storage: SQLiteBackend) -> None:
        """The emitter registry passes storage_backend to the prometheus factory."""
        assert getattr(make_prometheus_emitter, "needs_storage_backend", False) is True
        emitter = create("prometheus", {}, storage_backend=storage)
        assert isinstance(emitter, PrometheusEmitter)


class TestCachedExposition:
    """/metrics serves text rendered once per refresh, identical to a fresh render."""

    async def test_cached_text_equals_a_fresh_render(self, storage: SQLiteBackend) -> None:
        """The cached exposition is byte-identical to rendering the collector now."""
        await commit(storage, "beta", dt.date(2026, 3, 1), {"sa-1": "1", 'we"ird\nid': "2.5"})
        await commit(storage, "acme", dt.date(2026, 3, 2), {"sa-1": "0.1", "sa-2": "7"})
        emitter = PrometheusEmitter(storage)
        await emitter.refresh()
        reg = CollectorRegistry(auto_describe=False)
        reg.register(emitter)
        assert emitter.exposition() == generate_latest(reg)
        assert emitter.exposition().count(b"# TYPE ") == 7  # 3 cost families, 4 ownership families

    async def test_cached_text_follows_refresh_and_tenant_changes(
        self, storage: SQLiteBackend
    ) -> None:
        """A flush after an emit and a tenant limit both change the served text."""
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "1"})
        await commit(storage, "beta", dt.date(2026, 3, 1), {"sa-1": "1"})
        emitter = PrometheusEmitter(storage)
        await emitter.refresh()
        await commit(storage, "acme", dt.date(2026, 3, 2), {"sa-3": "4"})
        await emitter("acme", dt.date(2026, 3, 2), [])
        await emitter.flush()
        assert b'identity="sa-3"' in emitter.exposition()
        emitter.set_tenants(["acme"])
        assert b'tenant="beta"' not in emitter.exposition()
        assert b'tenant="acme"' in emitter.exposition()


label_text = st.text(alphabet=st.sampled_from('ab-_\\"\n é€'), max_size=6)
amounts = st.integers(min_value=-(10**20), max_value=10**20)


class TestDirectRendering:
    """The emitter writes the text itself; it must equal prometheus_client's encoder."""

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(label_text, label_text, label_text, label_text, amounts),
            max_size=8,
        ),
        label_text,
    )
    def test_matches_the_library_encoder(
        self, rows: list[tuple[str, str, str, str, int]], tenant: str
    ) -> None:
        """Any labels (quotes, backslashes, newlines, non-ASCII) and amounts render alike."""
        totals = tuple(CostTotal(tenant, i, p, c, e, a) for i, p, c, e, a in rows)
        snap = _TenantSnapshot(dt.date(2026, 3, 9), totals, totals[::-1])
        rendered = _TenantSnapshot(snap.latest_day, totals, totals[::-1], _render(tenant, snap))
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Fixed(_families({tenant: snap})))
        assert _publish({tenant: rendered}).text == generate_latest(reg)


class TestDropLabels:
    """drop_labels sums labels away exactly; the cached text still matches the library."""

    async def test_dropped_labels_are_summed_exactly(self, storage: SQLiteBackend) -> None:
        """Without identity, one series per remaining labels holds the exact sum."""
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "0.1", "sa-2": "0.2"})
        await commit(storage, "acme", dt.date(2026, 3, 2), {"sa-1": "1.5", "sa-2": "2.25"})
        emitter = PrometheusEmitter(storage, drop_labels=["identity", "env"])
        reg = CollectorRegistry(auto_describe=False)
        reg.register(emitter)
        await emitter.refresh()
        labels = {"tenant": "acme", "product_type": "KAFKA_BASE", "cost_type": "shared"}
        assert sample(reg, "chargeback_cost_latest_day", **labels) == 3.75
        assert sample(reg, "chargeback_cost_month_to_date", **labels) == 4.05
        text = emitter.exposition()
        assert b"identity=" not in text
        assert b"env=" not in text
        assert text == generate_latest(reg)

    @pytest.mark.parametrize("bad", [["tenant"], ["identity", "team"], "nope"])
    async def test_unknown_or_tenant_label_is_a_config_error(
        self, storage: SQLiteBackend, bad: object
    ) -> None:
        """Dropping tenant or an unknown label fails at creation with the allowed list."""
        with pytest.raises(ConfigError, match="droppable"):
            create("prometheus", {"drop_labels": bad}, storage_backend=storage)


teams_strategy = st.lists(st.tuples(label_text, amounts), max_size=5)


class TestTeamSeries:
    """Per-team series from the stored attributions (DESIGN §14)."""

    @settings(max_examples=40, deadline=None)
    @given(teams_strategy, teams_strategy, amounts, st.integers(0, 10**6), label_text)
    def test_team_families_match_the_library_encoder(
        self,
        latest: list[tuple[str, int]],
        mtd: list[tuple[str, int]],
        unassigned: int,
        unmapped: int,
        tenant: str,
    ) -> None:
        """The team, unassigned and unmapped lines render as prometheus_client's encoder."""
        view = TeamView(tuple(sorted(dict(latest).items())), tuple(sorted(dict(mtd).items())),
                        unassigned, unmapped)  # fmt: skip
        snap = _TenantSnapshot(dt.date(2026, 3, 9), (), (), teams=view)
        rendered = _TenantSnapshot(snap.latest_day, (), (), _render(tenant, snap), view)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(_Fixed(_families({tenant: snap})))
        assert _publish({tenant: rendered}).text == generate_latest(reg)

    async def test_refresh_reads_team_totals_of_the_attributions(
        self, storage: SQLiteBackend
    ) -> None:
        """Team series sum the month exactly; unassigned and unmapped come from the latest day."""
        store = ownership_store(storage)
        rules = OwnershipSettings.model_validate(
            {"rules": [{"team": "payments", "match": {"identity_id": "sa-1"}}]}
        )
        matcher = Matcher(compile_rules(rules, "acme"), Directory())
        for day, shares in ((dt.date(2026, 3, 1), {"sa-1": "0.1", "sa-2": "0.2"}),
                            (dt.date(2026, 3, 2), {"sa-1": "1.5", "sa-2": "2.25"})):  # fmt: skip
            await commit(storage, "acme", day, shares)
            rows = await storage.read_rows("acme", day)
            att = attribute("acme", day, key_amounts(rows), matcher, calc_seq=1)
            await store.write_attribution(att, rule_version=1, attributed_at=NOW, reemit=False)
        emitter = make_prometheus_emitter(storage_backend=storage)
        reg = CollectorRegistry(auto_describe=False)
        reg.register(emitter)
        await emitter.refresh()
        team = {"tenant": "acme", "team": "payments"}
        assert sample(reg, "chargeback_team_cost_latest_day", **team) == 1.5
        assert sample(reg, "chargeback_team_cost_month_to_date", **team) == 1.6
        unassigned = {"tenant": "acme", "team": "UNASSIGNED"}
        assert sample(reg, "chargeback_team_cost_month_to_date", **unassigned) == 2.45
        assert sample(reg, "chargeback_unassigned_cost_latest_day", tenant="acme") == 2.25
        assert sample(reg, "chargeback_unmapped_identities_latest_day", tenant="acme") == 1
        assert emitter.exposition() == generate_latest(reg)

    async def test_no_attribution_no_team_series(self, storage: SQLiteBackend) -> None:
        """A tenant whose latest day is not attributed has no team series (absent, not 0)."""
        await commit(storage, "acme", dt.date(2026, 3, 1), {"sa-1": "1"})
        emitter = make_prometheus_emitter(storage_backend=storage)
        await emitter.refresh()
        assert b"chargeback_unassigned_cost_latest_day{" not in emitter.exposition()
