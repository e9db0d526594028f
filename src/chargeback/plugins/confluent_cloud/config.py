"""Typed ``plugin_settings`` of the Confluent Cloud plugin (DESIGN §10).

``ConfluentCloudPlugin.initialize`` turns the raw mapping into :class:`CCloudSettings`
on its first line; nothing after that sees a ``dict[str, Any]``. Unknown keys are
rejected (``extra="forbid"``) so a typo is an error naming the field, not a silently
ignored setting. Example (YAML)::

    plugin_settings:
      api_key: ABCDEFGHIJKLMNOP
      api_secret: ${from the environment}
      base_url: https://api.confluent.cloud
      telemetry_url: https://api.telemetry.confluent.cloud
      flink_url: https://flink.{region}.{cloud}.confluent.cloud
      billing: {days_per_query: 30, page_size: 10000}
      http: {timeout_s: 30, max_retries: 6, requests_per_second: 10}
      metrics: {source: metrics_api}
      allocation:
        KAFKA_NUM_CKUS: {usage_ratio: 0.5}
        SUPPORT: {rule: unallocated}
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from chargeback.core.rules import RuleKind, RuleOverride
from chargeback.core.sources import HttpSettings, PrometheusSettings

__all__ = [
    "AllocationOverride",
    "BillingSettings",
    "CCloudSettings",
    "MetricsSettings",
    "OrgWideSettings",
    "Rule",
]

Rule = RuleKind
"""The allocation rules a product type can be configured with (see
:data:`~chargeback.core.rules.RuleKind`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BillingSettings(_Strict):
    """How ``/billing/v1/costs`` is read."""

    days_per_query: int = Field(default=30, ge=1, le=30)
    """Days per request window (the API accepts at most about one month)."""
    page_size: int = Field(default=10000, ge=1, le=10000)
    """Rows per page (the API's maximum is 10000)."""


class MetricsSettings(_Strict):
    """Where usage comes from."""

    source: Literal["metrics_api", "prometheus"] = "metrics_api"
    prometheus: PrometheusSettings | None = None
    limit: int = Field(default=1000, ge=1, le=1000)
    """Groups per Metrics API page."""
    requests_per_minute: int | None = Field(default=280, ge=1)
    """Metrics API request starts in any minute, whatever its host (at once, then as
    the oldest of them turn a minute old). The API allows 300 per minute per IP
    (reference §4.3); the default keeps a margin for requests that arrive closer
    together than they left. The tenants of one process with the same value share one
    such limit (it is per IP); several processes behind one IP must divide it.
    ``null``: the host's ``http.requests_per_second`` applies instead."""
    retention_days: int | None = Field(default=7, ge=1)
    """How many days back the Metrics API still answers (Confluent's guides say about 7;
    reference §4.3 marks it UNCONFIRMED). Usage older than this that the usage ledger
    does not hold is never asked for: its lines get the rule ``usage_unavailable``.
    ``null``: no limit (a source that keeps its history). With ``source: prometheus``
    the Prometheus server's own retention applies and this is not used."""
    when_unavailable: Literal["even", "unallocated"] = "even"
    """How a line whose usage is unavailable is split: ``even`` over the identities
    active on the resource that day, or ``unallocated``."""
    resources_per_query: int = Field(default=100, ge=1, le=1000)
    """Resources (clusters, compute pools) asked for in one Metrics API query: an OR of
    their ids, grouped by resource and principal, paged by ``limit``. The reference
    documents compound filters but no bound on their size; 1 sends one query per
    resource."""

    @model_validator(mode="after")
    def _prometheus_needs_url(self) -> MetricsSettings:
        if self.source == "prometheus" and self.prometheus is None:
            raise ValueError("metrics.source is 'prometheus' but metrics.prometheus.url is not set")
        return self


class AllocationOverride(_Strict):
    """Overrides of the default rule for one product type (any field may be omitted)."""

    rule: Rule | None = None
    usage_ratio: Decimal | None = Field(default=None, ge=0, le=1)
    """Part of the line split by usage (0..1); the rest is shared evenly."""
    metric: list[str] | None = None
    """Metric keys weighing the usage part: ``request_bytes``, ``response_bytes``, ``cfu``."""

    @field_validator("metric", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: list[str] | None) -> list[str] | None:
        known = {"request_bytes", "response_bytes", "cfu"}
        for name in value or ():
            if name not in known:
                raise ValueError(f"unknown metric {name!r}; expected one of {sorted(known)}")
        return value

    def ratio(self) -> Fraction | None:
        """Return ``usage_ratio`` as an exact fraction."""
        return None if self.usage_ratio is None else Fraction(self.usage_ratio)

    def rule_override(self) -> RuleOverride:
        """Return this override for the core's rule table."""
        metrics = None if self.metric is None else tuple(self.metric)
        return RuleOverride(rule=self.rule, ratio=self.ratio(), metrics=metrics)


IdentityType = Literal["service_account", "user", "identity_pool"]
_DEFAULT_ORG_WIDE: tuple[IdentityType, ...] = ("service_account", "user")


class OrgWideSettings(_Strict):
    """Who shares org-wide lines (SUPPORT, AUDIT_LOG_READ, PROMO_CREDIT without resource)."""

    identity_types: list[IdentityType] = Field(default_factory=lambda: [*_DEFAULT_ORG_WIDE])


class CCloudSettings(_Strict):
    """Validated ``plugin_settings`` of one Confluent Cloud tenant."""

    api_key: str = Field(min_length=1)
    api_secret: SecretStr
    base_url: str = "https://api.confluent.cloud"
    telemetry_url: str = "https://api.telemetry.confluent.cloud"
    flink_url: str = "https://flink.{region}.{cloud}.confluent.cloud"
    """Template of the regional Flink SQL host; ``{region}`` and ``{cloud}`` are lowercase."""
    flink_api_key: str | None = None
    flink_api_secret: SecretStr | None = None
    billing: BillingSettings = Field(default_factory=BillingSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    allocation: dict[str, AllocationOverride] = Field(default_factory=dict)
    """Per product type (e.g. ``KAFKA_NUM_CKUS``) overrides of the default rule."""
    org_wide: OrgWideSettings = Field(default_factory=OrgWideSettings)
    unknown_principals: Literal["charge", "unallocated"] | None = None
    """Usage by a principal the inventory does not know (deleted, or never listed):
    ``charge`` charges it to that principal id as named, ``unallocated`` sends it to
    UNALLOCATED (rule ``unknown_principal``); unset: each handler's default (Flink
    ``unallocated``, the others ``charge``). Either way reconcile and the demo list it
    as unattributed."""
    allocator_overrides: dict[str, str] = Field(default_factory=dict)
    """Read by the engine (``package.module:callable`` per product type); accepted here."""
    identity_resolver_overrides: dict[str, str] = Field(default_factory=dict)
    """Read by the engine; accepted here."""

    @field_validator("base_url", "telemetry_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("flink_url")
    @classmethod
    def _flink_template(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL template, got {value!r}")
        try:
            value.format(region="r", cloud="c")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"flink_url may only use the placeholders {{region}} and {{cloud}}: {value!r}"
            ) from exc
        return value.rstrip("/")

    @field_validator("allocation")
    @classmethod
    def _upper_keys(cls, value: dict[str, AllocationOverride]) -> dict[str, AllocationOverride]:
        return {k.upper(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _flink_pair(self) -> CCloudSettings:
        if (self.flink_api_key is None) != (self.flink_api_secret is None):
            raise ValueError("set both flink_api_key and flink_api_secret, or neither")
        return self

    def flink_credentials(self) -> tuple[str, SecretStr]:
        """Return the Flink API key and secret (the main ones unless configured)."""
        if self.flink_api_key is not None and self.flink_api_secret is not None:
            return self.flink_api_key, self.flink_api_secret
        return self.api_key, self.api_secret

    def flink_base(self, cloud: str, region: str) -> str:
        """Return the regional Flink SQL base URL for a compute pool's cloud and region."""
        return self.flink_url.format(region=region.lower(), cloud=cloud.lower())
