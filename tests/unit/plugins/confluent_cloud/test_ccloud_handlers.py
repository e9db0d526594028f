"""Service handlers: rule table coverage, identity resolution from the date's caches."""

from __future__ import annotations

import datetime as dt

import pytest

from chargeback.core.models import (
    BillingLineItem,
    Identity,
    IdentityResolution,
    IdentitySet,
    Resource,
)
from chargeback.core.plugin.protocols import ResolveContext, ServiceHandler
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin
from chargeback.plugins.confluent_cloud.inventory import (
    CONNECTOR_CREDENTIALS_MASKED,
    CONNECTOR_OWNER_UNKNOWN,
    SENTINELS,
    connector_owner,
)

DAY = dt.date(2026, 3, 1)
MASKED = CONNECTOR_CREDENTIALS_MASKED
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

REFERENCE_LINE_TYPES = (
    "KAFKA_NUM_CKUS", "KAFKA_BASE", "KAFKA_PARTITION", "KAFKA_STORAGE", "KAFKA_NETWORK_READ",
    "KAFKA_NETWORK_WRITE", "KAFKA_REST_PRODUCE", "KAFKA_STREAMS", "CONNECT_CAPACITY",
    "CONNECT_NUM_TASKS", "CONNECT_THROUGHPUT", "CONNECT_NUM_RECORDS", "CUSTOM_CONNECT_NUM_TASKS",
    "CUSTOM_CONNECT_THROUGHPUT", "KSQL_NUM_CSUS", "FLINK_NUM_CFUS", "SCHEMA_REGISTRY",
    "GOVERNANCE_BASE", "NUM_RULES", "CLUSTER_LINKING_PER_LINK", "CLUSTER_LINKING_READ",
    "CLUSTER_LINKING_WRITE", "TABLEFLOW_DATA_PROCESSED", "TABLEFLOW_NUM_TOPICS",
    "TABLEFLOW_STORAGE", "USM_CONNECTED_NODE", "AUDIT_LOG_READ", "SUPPORT", "PROMO_CREDIT",
)  # fmt: skip
EXPECTED_SERVICE = {
    **dict.fromkeys([t for t in REFERENCE_LINE_TYPES if t.startswith("KAFKA_")], "kafka"),
    **dict.fromkeys([t for t in REFERENCE_LINE_TYPES if "CONNECT_" in t], "connectors"),
    "KSQL_NUM_CSUS": "ksqldb", "FLINK_NUM_CFUS": "flink", "SCHEMA_REGISTRY": "schema_registry",
    "GOVERNANCE_BASE": "schema_registry", "NUM_RULES": "schema_registry",
    "AUDIT_LOG_READ": "org_wide", "SUPPORT": "org_wide", "PROMO_CREDIT": "org_wide",
}  # fmt: skip


def plugin(**settings: object) -> ConfluentCloudPlugin:
    p = ConfluentCloudPlugin()
    p.initialize({"api_key": "K", "api_secret": "S", **settings})
    return p


def key(kid: str, owner: str, resource: str, env: str = "env-1") -> Identity:
    return Identity(kid, "api_key", owner_id=owner, resource_id=resource,
                    attributes={"env_id": env})  # fmt: skip


@pytest.fixture
def context() -> ResolveContext:
    identities = IdentitySet(
        [
            Identity("sa-a", "service_account"), Identity("sa-b", "service_account"),
            Identity("u-c", "user"), Identity("pool-x", "identity_pool"), *SENTINELS,
            key("KA", "sa-a", "lkc-1"), key("KB", "sa-b", "lkc-1"), key("KS", "u-c", "lsrc-1"),
        ]
    )  # fmt: skip
    resources = {
        r.resource_id: r
        for r in [
            Resource("lkc-1", "kafka_cluster", env_id="env-1"),
            Resource("lkc-2", "kafka_cluster", env_id="env-2"),
            Resource("lsrc-1", "schema_registry", env_id="env-1"),
            Resource("lsrc-2", "schema_registry", env_id="env-1"),
            Resource("lcc-sa", "connector", parent_id="lkc-1", owner_id="sa-b",
                     attributes={"auth_mode": "SERVICE_ACCOUNT"}),
            Resource("lcc-key", "connector", parent_id="lkc-1", owner_id="KA",
                     attributes={"auth_mode": "KAFKA_API_KEY", "kafka_api_key": "KA"}),
            Resource("lcc-gone", "connector", parent_id="lkc-1", owner_id="KZ",
                     attributes={"auth_mode": "KAFKA_API_KEY", "kafka_api_key": "KZ"}),
            Resource("lksqlc-1", "ksqldb_cluster", owner_id="u-c"),
            Resource("lfcp-1", "flink_compute_pool"),
            Resource("env-1/st1", "flink_statement", parent_id="lfcp-1", owner_id="sa-a",
                     attributes={"statement_name": "st1"}),
            Resource("env-1/st2", "flink_statement", parent_id="lfcp-1", owner_id="KB",
                     attributes={"statement_name": "st2"}),
            Resource("env-1/old", "flink_statement", parent_id="lfcp-1", owner_id="u-c",
                     deleted_at=T0, attributes={"statement_name": "old"}),
        ]
    }  # fmt: skip
    return ResolveContext(cached_identities=identities, cached_resources=resources)


def resolve(
    p: ConfluentCloudPlugin,
    ctx: ResolveContext,
    pt: str,
    rid: str | None,
    env: str | None = "env-1",
) -> IdentityResolution:
    handler = next(h for h in p.get_service_handlers().values() if pt in h.handles_product_types)
    line = BillingLineItem("l", DAY, pt, "X", 100, resource_id=rid, env_id=env)
    return handler.resolve_identities(line, ctx)


class TestRuleTable:
    @pytest.mark.parametrize("line_type", REFERENCE_LINE_TYPES)
    def test_every_reference_line_type_reaches_a_handler_or_the_fallback(
        self, line_type: str
    ) -> None:
        """Each line_type of the reference enum is claimed by the expected handler, or none."""
        handlers = plugin().get_service_handlers()
        claimed = [s for s, h in handlers.items() if line_type in h.handles_product_types]
        assert claimed == ([EXPECTED_SERVICE[line_type]] if line_type in EXPECTED_SERVICE else [])

    @pytest.mark.parametrize("alt", ["KAFKA_NUM_CKU", "KSQL_NUM_CSU", "FLINK_NUM_CFU"])
    def test_singular_alternates_are_claimed(self, alt: str) -> None:
        """The singular spellings are handled like the plural ones."""
        handlers = plugin().get_service_handlers()
        assert any(alt in h.handles_product_types for h in handlers.values())

    def test_handlers_satisfy_the_protocol(self) -> None:
        """Every handler is a ServiceHandler."""
        assert all(isinstance(h, ServiceHandler) for h in plugin().get_service_handlers().values())

    def test_metrics_follow_the_configured_rule(self) -> None:
        """Network lines need their bytes metric; an 'even' override needs none."""
        p = plugin(allocation={"KAFKA_NETWORK_READ": {"rule": "even"}})
        kafka = p.get_service_handlers()["kafka"]
        assert [q.key for q in kafka.get_metrics_for_product_type("KAFKA_NETWORK_WRITE")] == [
            "request_bytes"
        ]
        assert kafka.get_metrics_for_product_type("KAFKA_NETWORK_READ") == ()
        assert kafka.get_allocator("KAFKA_NETWORK_READ").params.rule == "kafka_network_read_even"

    def test_ratio_override(self) -> None:
        """usage_ratio overrides the CKU default of 70/30 exactly."""
        p = plugin(allocation={"KAFKA_NUM_CKUS": {"usage_ratio": 0.25}})
        params = p.get_service_handlers()["kafka"].get_allocator("KAFKA_NUM_CKUS").params
        assert (params.usage_ratio.numerator, params.usage_ratio.denominator) == (1, 4)


class TestResolve:
    def test_kafka_key_owners_and_key_map(self, context: ResolveContext) -> None:
        """A cluster's candidates are its API key owners; keys map to owners."""
        res = resolve(plugin(), context, "KAFKA_NETWORK_READ", "lkc-1")
        assert res.identities.ids == ("sa-a", "sa-b")
        assert res.principal_map["KB"] == "sa-b"
        empty = resolve(plugin(), context, "KAFKA_NETWORK_READ", "lkc-2")
        assert not empty.identities
        assert empty.reason

    @pytest.mark.parametrize(
        ("rid", "owner"),
        [("lcc-sa", "sa-b"), ("lcc-key", "sa-a"), ("lcc-gone", CONNECTOR_OWNER_UNKNOWN)],
    )
    def test_connector_owner(self, context: ResolveContext, rid: str, owner: str) -> None:
        """Service account, API key owner, or the unknown sentinel."""
        assert resolve(plugin(), context, "CONNECT_CAPACITY", rid).identities.ids == (owner,)

    def test_connector_missing_from_inventory(self, context: ResolveContext) -> None:
        """A connector not in the inventory resolves to nobody, with a reason."""
        res = resolve(plugin(), context, "CONNECT_CAPACITY", "lcc-none")
        assert not res.identities
        assert res.reason is not None
        assert "lcc-none" in res.reason

    def test_ksql_credential_identity(self, context: ResolveContext) -> None:
        """ksqlDB lines resolve to the credential identity."""
        assert resolve(plugin(), context, "KSQL_NUM_CSUS", "lksqlc-1").identities.ids == ("u-c",)

    def test_flink_statement_owners_active_that_day(self, context: ResolveContext) -> None:
        """Statement names map to owners (keys folded); deleted statements are left out."""
        res = resolve(plugin(), context, "FLINK_NUM_CFUS", "lfcp-1")
        assert res.identities.ids == ("sa-a", "sa-b")
        assert dict(res.principal_map) == {"st1": "sa-a", "st2": "sa-b"}

    def test_schema_registry_keys_then_environment(self, context: ResolveContext) -> None:
        """SR lines go to the SR's key owners, else to the environment's key owners."""
        assert resolve(plugin(), context, "SCHEMA_REGISTRY", "lsrc-1").identities.ids == ("u-c",)
        fallback = resolve(plugin(), context, "NUM_RULES", "lsrc-2")
        assert fallback.identities.ids == ("sa-a", "sa-b", "u-c")

    def test_org_wide_types_are_configurable(self, context: ResolveContext) -> None:
        """Org-wide lines go to service accounts and users, or the configured types."""
        assert resolve(plugin(), context, "SUPPORT", None, None).identities.ids == (
            "sa-a", "sa-b", "u-c",
        )  # fmt: skip
        pools = plugin(org_wide={"identity_types": ["identity_pool"]})
        assert resolve(pools, context, "AUDIT_LOG_READ", None, None).identities.ids == ("pool-x",)


class TestConnectorOwner:
    @pytest.mark.parametrize(
        ("config", "owner"),
        [
            ({"kafka.auth.mode": "SERVICE_ACCOUNT", "kafka.service.account.id": "sa-1"}, "sa-1"),
            ({"kafka.auth.mode": "KAFKA_API_KEY", "kafka.api.key": "K1"}, "sa-k"),
            ({"kafka.auth.mode": "KAFKA_API_KEY", "kafka.api.key": "****"}, MASKED),
            ({"kafka.service.account.id": "sa-2"}, "sa-2"),
            ({}, CONNECTOR_OWNER_UNKNOWN),
            ({"kafka.auth.mode": "OAUTH"}, CONNECTOR_OWNER_UNKNOWN),
        ],
    )  # fmt: skip
    def test_auth_modes(self, config: dict[str, str], owner: str) -> None:
        """Each auth mode maps to its owner or a sentinel."""
        assert connector_owner(config, {"K1": "sa-k"})[0] == owner
