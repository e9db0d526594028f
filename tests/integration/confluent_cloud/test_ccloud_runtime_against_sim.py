"""The Confluent Cloud plugin in a real TenantRuntime against ccloud_sim and SQLite."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ccloud_sim import LINE_TYPES, Faults, SimClock, create_app
from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.models import UNALLOCATED, ChargebackRow
from chargeback.core.money import split
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
TENANT = "acme"


class RecordingTransport(httpx.AsyncBaseTransport):
    """An ASGITransport into the sim that also keeps every request (method, path, body)."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[tuple[str, str, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)

    def count(self, path_prefix: str) -> int:
        return sum(1 for _, path, _ in self.requests if path.startswith(path_prefix))


@dataclass
class Harness:
    """One sim and one database; ``runtime()`` builds a fresh TenantRuntime over them."""

    app: Starlette
    db_path: Path
    clock: SimClock
    transport: RecordingTransport
    lookback_days: int = 10
    cutoff_days: int = 3
    settings: dict[str, Any] = field(default_factory=dict)
    storages: list[SQLiteBackend] = field(default_factory=list)

    def now(self) -> dt.datetime:
        return self.clock.now()

    async def runtime(self) -> tuple[TenantRuntime, SQLiteBackend]:
        storage = SQLiteBackend(self.db_path)
        await storage.open()
        self.storages.append(storage)

        async def no_sleep(_: float) -> None:
            return None

        plugin = ConfluentCloudPlugin(transport=self.transport, sleep=no_sleep)
        config = TenantConfig(
            name=TENANT,
            ecosystem="confluent_cloud",
            plugin_settings={
                "api_key": "SIMKEY",
                "api_secret": "SIMSECRET",
                "base_url": "http://sim",
                "telemetry_url": "http://sim",
                "flink_url": "http://sim",
                "http": {"requests_per_second": None, "max_retries": 8},
                **self.settings,
                # The harness's sims keep every day's usage (metrics_retention_days=None).
                "metrics": {"retention_days": None, **self.settings.get("metrics", {})},
            },
            lookback_days=self.lookback_days,
            cutoff_days=self.cutoff_days,
        )
        return TenantRuntime(config, plugin, storage, clock=self.now), storage


HarnessFactory = Callable[..., Harness]


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Build harnesses (a sim app with a frozen clock, a SQLite file); close them after."""
    made: list[Harness] = []

    def make(
        *, scale: str = "small", seed: int = 7, name: str = "db", faults: Faults | None = None,
        **kw: Any,
    ) -> Harness:  # fmt: skip
        clock = SimClock(NOW)
        app = create_app(
            seed=seed, scale=scale, clock=clock, faults=faults, metrics_retention_days=None
        )
        harness = Harness(app, tmp_path / f"{name}.sqlite", clock, RecordingTransport(app), **kw)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        for storage in harness.storages:
            await storage.close()


NETWORK = ("KAFKA_NETWORK_READ", "KAFKA_NETWORK_WRITE")


async def all_rows(storage: SQLiteBackend, start: dt.date, end: dt.date) -> list[ChargebackRow]:
    rows: list[ChargebackRow] = []
    day = start
    while day < end:
        rows.extend(await storage.read_rows(TENANT, day))
        day += dt.timedelta(days=1)
    return sorted(rows)


def window(h: Harness) -> tuple[dt.date, dt.date]:
    today = h.now().date()
    return today - dt.timedelta(days=h.lookback_days), today - dt.timedelta(days=h.cutoff_days - 1)


class TestNetworkSplit:
    async def test_network_lines_split_by_the_ground_truth_bytes(
        self, make_harness: HarnessFactory
    ) -> None:
        """Each network line is split exactly like the sim's true bytes per owner."""
        h = make_harness(lookback_days=8)
        runtime, storage = await h.runtime()
        assert (await runtime.run()).status is RunStatus.SUCCESS
        org = h.app.state.org
        start, end = window(h)
        by_line: dict[tuple[dt.date, str], dict[str, int]] = defaultdict(dict)
        for row in await all_rows(storage, start, end):
            if row.product_type in NETWORK:
                parts = by_line[(row.date, row.line_id)]
                parts[row.identity_id] = parts.get(row.identity_id, 0) + row.amount
        checked = 0
        for (day, line_id), parts in by_line.items():
            owners: dict[str, int] = org.truth(day, line_id)["owners"]
            if not owners:
                continue
            payers = sorted(owners)
            shares = split(sum(parts.values()), [owners[p] for p in payers])
            assert parts == {p: a for p, a in zip(payers, shares, strict=True) if a}, line_id
            checked += 1
        assert checked >= 20
        await runtime.aclose()


class TestApiEconomy:
    async def test_metrics_queries_do_not_grow_with_the_clusters(
        self, make_harness: HarnessFactory
    ) -> None:
        """A tiny org (3 clusters) and a small one (6 clusters) send the same number of
        distinct Metrics API queries (one per metric: its clusters OR-ed in one filter,
        grouped by cluster and principal), and the same split as one query per
        cluster gives."""
        queries: dict[str, set[bytes]] = {}
        tables: dict[str, list[ChargebackRow]] = {}
        clusters: dict[str, int] = {}
        for scale, per_query in (("tiny", 100), ("small", 100), ("small", 1)):
            name = f"{scale}-{per_query}"
            h = make_harness(scale=scale, name=name, lookback_days=6,
                             settings={"metrics": {"resources_per_query": per_query}})  # fmt: skip
            runtime, storage = await h.runtime()
            assert (await runtime.run()).status is RunStatus.SUCCESS
            await runtime.aclose()
            queries[name] = {b for m, path, b in h.transport.requests if path.endswith("/query")}
            tables[name] = await all_rows(storage, *window(h))
            clusters[scale] = len(h.app.state.org.clusters)
        assert clusters == {"tiny": 3, "small": 6}
        assert len(queries["tiny-100"]) == len(queries["small-100"]) == 3  # 2 Kafka + Flink
        assert len(queries["small-1"]) > len(queries["small-100"])
        assert tables["small-100"] == tables["small-1"]
        assert tables["small-100"]


class GatedTransport(httpx.AsyncBaseTransport):
    """Into the sim; every API key page after the first waits until a connector
    listing has been asked for (or fails after 10 s)."""

    def __init__(self, app: Starlette) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.connectors_asked = asyncio.Event()
        self.order: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/connectors" in path:
            self.connectors_asked.set()
        if path == "/iam/v2/api-keys" and "page_token" in request.url.params:
            await asyncio.wait_for(self.connectors_asked.wait(), timeout=10)
        self.order.append(path)
        return await self.inner.handle_async_request(request)


class TestInventoryCrawl:
    async def test_connectors_are_listed_while_api_keys_still_page(self) -> None:
        """A cluster's connectors are asked for as soon as its environment's clusters are
        listed, not after the last API key page (the key pages wait for them here), and
        the inventory is the same as the sequential listing's."""
        app = create_app(seed=7, scale="small", clock=SimClock(NOW))
        gated = GatedTransport(app)

        async def no_sleep(_: float) -> None:
            return None

        inventories = []
        for transport in (gated, httpx.ASGITransport(app=app)):
            plugin = ConfluentCloudPlugin(transport=transport, sleep=no_sleep)
            plugin.initialize(
                {"api_key": "SIMKEY", "api_secret": "SIMSECRET", "base_url": "http://sim",
                 "telemetry_url": "http://sim", "flink_url": "http://sim",
                 "http": {"requests_per_second": None, "list_page_size": 20}}
            )  # fmt: skip
            inventories.append(await plugin.build_shared_context(TENANT))
            await plugin.close()
        keys = [i for i, path in enumerate(gated.order) if path == "/iam/v2/api-keys"]
        first_connectors = next(i for i, path in enumerate(gated.order) if "/connectors" in path)
        assert len(keys) > 2
        assert first_connectors < keys[-1]
        assert inventories[0] == inventories[1]
        assert inventories[0].connectors


class TestConservation:
    async def test_every_date_reconciles_to_zero_small_60_days(
        self, make_harness: HarnessFactory
    ) -> None:
        """Over 60 days of a small org, allocated equals billed for every date and type."""
        await self._check(make_harness(scale="small", lookback_days=63))

    @pytest.mark.slow
    async def test_every_date_reconciles_to_zero_medium_60_days(
        self, make_harness: HarnessFactory
    ) -> None:
        """The same over 60 days of a medium org (issue 4's conservation bar; ~20-40 s)."""
        await self._check(make_harness(scale="medium", lookback_days=63))

    @staticmethod
    async def _check(h: Harness) -> None:
        runtime, storage = await h.runtime()
        summary = await runtime.run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        start, end = window(h)
        report = await storage.reconcile(TENANT, start, end)
        assert {r.day for r in report} == {
            start + dt.timedelta(days=i) for i in range((end - start).days)
        }
        assert [r for r in report if r.difference != 0] == []
        assert sum(r.billed for r in report) != 0
        await runtime.aclose()


class TestFaults:
    async def test_faulty_sim_gives_the_same_result_as_a_clean_one(
        self, make_harness: HarnessFactory
    ) -> None:
        """10% 429, 10% 5xx, drops, cut bodies and slow replies change nothing in the result."""
        faults = Faults(
            seed=11, rate_429=0.10, rate_500=0.05, rate_503=0.05, rate_drop=0.02,
            rate_cut_body=0.02, rate_truncate=0.05, rate_slow=0.05, slow_seconds=0.01,
            retry_after=1,
        )  # fmt: skip
        clean = make_harness(name="clean")
        faulty = make_harness(name="faulty", faults=faults)
        results = []
        for h in (clean, faulty):
            runtime, storage = await h.runtime()
            summary = await runtime.run()
            assert summary.status is RunStatus.SUCCESS, summary.error
            results.append(await all_rows(storage, *window(h)))
            await runtime.aclose()
        injected = faulty.app.state.stats.as_dict()["faults"]
        assert injected.get("rate_limited", 0) + injected.get("429", 0) > 0
        assert injected.get("500", 0) + injected.get("503", 0) > 0
        assert results[0]
        assert results[0] == results[1]

    async def test_outage_fails_cleanly_and_a_later_run_completes(
        self, make_harness: HarnessFactory
    ) -> None:
        """A permanent outage fails the run with nothing written; the next run does it all."""
        h = make_harness()
        h.app.state.faults.outage = True
        runtime, storage = await h.runtime()
        failed = await runtime.run()
        assert failed.status is RunStatus.FAILED
        assert failed.error is not None
        assert "SIMSECRET" not in failed.error
        start, end = window(h)
        assert await storage.get_date_states(TENANT, start, end) == {}
        h.app.state.faults.outage = False
        ok = await runtime.run()
        assert ok.status is RunStatus.SUCCESS, ok.error
        assert len(await storage.get_date_states(TENANT, start, end)) == (end - start).days
        await runtime.aclose()


def _metric_starts(h: Harness) -> list[dt.date]:
    starts = []
    for method, path, body in h.transport.requests:
        if method == "POST" and path == "/v2/metrics/cloud/query":
            interval = json.loads(body)["intervals"][0]
            starts.append(dt.date.fromisoformat(interval[:10]))
    return starts


class TestLateData:
    async def test_changed_days_recalculated_settled_days_untouched(
        self, make_harness: HarnessFactory
    ) -> None:
        """A day later, revised days are redone; settled days get no metrics query, no write."""
        h = make_harness(lookback_days=12, cutoff_days=3)
        runtime, storage = await h.runtime()
        assert (await runtime.run()).status is RunStatus.SUCCESS
        first = h.now().date() - dt.timedelta(days=12)
        horizon = h.now().date() + dt.timedelta(days=2)
        before = await storage.get_date_states(TENANT, first, horizon)
        org = h.app.state.org
        later = NOW + dt.timedelta(days=1)
        changed = {d for d in before if org.billing_lines(d, NOW) != org.billing_lines(d, later)}
        assert changed, "the sim should revise its most recent days"
        h.clock.set(later)
        h.transport.requests.clear()
        assert (await runtime.run()).status is RunStatus.SUCCESS
        after = await storage.get_date_states(TENANT, first, horizon)
        for day in changed:
            assert after[day].calc_seq == before[day].calc_seq + 1, day
        recalc_first = later.date() - dt.timedelta(days=3 + 3 - 1)  # cutoff 3, recalc_days 3
        settled = [d for d in before if d < recalc_first]
        assert settled
        assert all(after[d].calc_seq == before[d].calc_seq for d in settled)
        assert all(after[d].calculated_at == before[d].calculated_at for d in settled)
        starts = _metric_starts(h)
        assert starts, "the revised days need usage"
        assert min(starts) >= recalc_first
        await runtime.aclose()


EXPECTED_RULES: dict[str, set[str]] = {
    "kafka_network": {"kafka_network_usage", "even_split_no_usage", "no_identities"},
    "kafka_capacity": {"kafka_capacity_usage_shared", "even_split_no_usage", "no_identities"},
    "kafka_storage": {"kafka_storage_usage_shared", "even_split_no_usage", "no_identities"},
    "connector": {"connector_owner", "no_identities"},
    "ksql": {"ksql_credential_identity", "no_identities"},
    "flink": {"flink_statement_cfu", "even_split_no_usage", "no_identities", "unknown_principal"},
    "sr": {"schema_registry_key_owners_even", "no_identities"},
    "org": {"org_wide_even", "no_identities"},
    "fallback": {"fallback_unallocated"},
}


def rule_family(line_type: str) -> str:
    if line_type in (*NETWORK, "KAFKA_REST_PRODUCE"):
        return "kafka_network"
    if line_type == "KAFKA_STORAGE":
        return "kafka_storage"
    if line_type.startswith("KAFKA_"):
        return "kafka_capacity"
    if "CONNECT_" in line_type:
        return "connector"
    families = {
        "KSQL_NUM_CSUS": "ksql", "FLINK_NUM_CFUS": "flink", "SCHEMA_REGISTRY": "sr",
        "GOVERNANCE_BASE": "sr", "NUM_RULES": "sr", "SUPPORT": "org", "AUDIT_LOG_READ": "org",
        "PROMO_CREDIT": "org",
    }  # fmt: skip
    return families.get(line_type, "fallback")


@dataclass
class Month:
    """A 30-day run of a small org: its rows by line type, and the sim's organization."""

    rows: dict[str, list[ChargebackRow]]
    org: Any
    known: set[str]
    """Resource ids (and Flink statement names) the plugin's inventory crawl saw."""


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    """Run 30 days of a small org once for the module."""

    async def compute() -> Month:
        clock = SimClock(NOW)
        app = create_app(seed=7, scale="small", clock=clock, metrics_retention_days=None)
        path: Path = tmp_path_factory.mktemp("month") / "db.sqlite"
        h = Harness(app, path, clock, RecordingTransport(app), lookback_days=33)
        runtime, storage = await h.runtime()
        assert (await runtime.run()).status is RunStatus.SUCCESS
        out: dict[str, list[ChargebackRow]] = defaultdict(list)
        for row in await all_rows(storage, *window(h)):
            out[row.product_type].append(row)
        inventory = runtime.plugin.inventory  # type: ignore[attr-defined]
        known = {r.resource_id for r in inventory.connectors}
        known |= {r.display_name or "" for r in inventory.flink_statements}
        await runtime.aclose()
        await storage.close()
        return Month(out, app.state.org, known)

    return asyncio.run(compute())


def by_line(rows: list[ChargebackRow]) -> dict[tuple[dt.date, str], dict[str, int]]:
    out: dict[tuple[dt.date, str], dict[str, int]] = defaultdict(dict)
    for row in rows:
        parts = out[(row.date, row.line_id)]
        parts[row.identity_id] = parts.get(row.identity_id, 0) + row.amount
    return out


class TestGroundTruth:
    def test_connectors_charged_to_their_owner_or_the_masked_sentinel(self, month: Month) -> None:
        """Connector lines go to the true owner; masked credentials to the sentinel.

        Connectors deleted before the first crawl cannot be known: UNALLOCATED.
        """
        types = [t for t in LINE_TYPES if "CONNECT_" in t]
        checked = 0
        for t in types:
            for (day, line_id), parts in by_line(month.rows[t]).items():
                truth = month.org.truth(day, line_id)
                if truth["resource_id"] not in month.known:
                    owner = UNALLOCATED
                elif truth["details"]["masked"]:
                    owner = "CONNECTOR_CREDENTIALS_MASKED"
                else:
                    owner = next(iter(truth["owners"]))
                assert set(parts) == {owner}, (line_id, truth["details"])
                checked += 1
        assert checked > 100

    def test_ksql_charged_to_the_credential_identity(self, month: Month) -> None:
        """ksqlDB lines go to the cluster's credential identity."""
        for (day, line_id), parts in by_line(month.rows["KSQL_NUM_CSUS"]).items():
            assert set(parts) == set(month.org.truth(day, line_id)["owners"])

    def test_flink_split_by_true_cfu_minutes(self, month: Month) -> None:
        """Flink lines are split exactly by the true CFU-minutes per statement owner.

        CFU of statements gone before the first crawl is UNALLOCATED (split last).
        """
        checked = 0
        for (day, line_id), parts in by_line(month.rows["FLINK_NUM_CFUS"]).items():
            statements = month.org.truth(day, line_id)["details"]["statements"]
            if not statements:
                continue
            owners: dict[str, int] = defaultdict(int)
            lost = 0
            for name, st in statements.items():
                if name in month.known:
                    owners[st["principal"]] += st["cfu_minutes"]
                else:
                    lost += st["cfu_minutes"]
            payers = sorted(owners)
            weights = [owners[p] for p in payers] + ([lost] if lost else [])
            shares = split(sum(parts.values()), weights)
            expected = dict(zip([*payers, UNALLOCATED], shares, strict=False))
            assert parts == {p: a for p, a in expected.items() if a}
            checked += 1
        assert checked > 10

    def test_schema_registry_goes_to_its_key_owners(self, month: Month) -> None:
        """SR lines are shared by owners of keys on that Schema Registry (those still listed)."""
        checked = 0
        for (day, line_id), parts in by_line(month.rows["SCHEMA_REGISTRY"]).items():
            owners = set(month.org.truth(day, line_id)["owners"])
            if owners and UNALLOCATED not in parts:
                assert set(parts) <= owners
                checked += 1
        assert checked > 10


class TestEveryLineType:
    @pytest.mark.parametrize("line_type", LINE_TYPES)
    def test_line_type_reaches_its_rule(self, line_type: str, month: Month) -> None:
        """Every reference line_type is billed and allocated by its rule (or the fallback)."""
        rows = month.rows.get(line_type, [])
        assert rows, f"the sim billed no {line_type} in 30 days"
        family = rule_family(line_type)
        rules = {r.rule for r in rows}
        assert rules <= EXPECTED_RULES[family], rules
        main = sorted(EXPECTED_RULES[family])[0] if family == "fallback" else None
        assert main is None or rules == {main}
        if family == "fallback":
            assert {r.identity_id for r in rows} == {UNALLOCATED}
            assert all(r.reason for r in rows)
        assert {r.cost_type for r in rows} <= {"usage", "shared", "unallocated"}


@pytest.mark.parametrize("policy", ["charge", "unallocated"])
async def test_unknown_principals_setting_decides_where_their_usage_goes(
    make_harness: HarnessFactory, policy: str
) -> None:
    """unknown_principals: 'charge' bills principals the inventory lacks as named (listed
    as unattributed), 'unallocated' sends their usage to UNALLOCATED (unknown_principal)."""
    from chargeback.core.unattributed import unattributed_cost  # noqa: PLC0415

    h = make_harness(lookback_days=6, settings={"unknown_principals": policy})
    runtime, storage = await h.runtime()
    assert (await runtime.run()).status is RunStatus.SUCCESS
    first, end = window(h)
    rules = {r.rule for r in await all_rows(storage, first, end)}
    unknown = (await unattributed_cost(storage, TENANT, first, end)).unknown_principals
    if policy == "charge":
        assert unknown, "the sim's usage names principals the inventory lacks"
        assert "unknown_principal" not in rules
    else:
        assert unknown == {}
        assert "unknown_principal" in rules
    await runtime.aclose()
