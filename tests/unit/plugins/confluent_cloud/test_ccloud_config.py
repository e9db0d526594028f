"""plugin_settings validation of the Confluent Cloud plugin."""

from __future__ import annotations

from fractions import Fraction

import pytest
from pydantic import ValidationError

from chargeback.plugins.confluent_cloud.config import CCloudSettings

BASE = {"api_key": "K", "api_secret": "S3CRET"}


class TestSettings:
    def test_defaults(self) -> None:
        """Only key and secret are required; URLs and limits have documented defaults."""
        s = CCloudSettings.model_validate(BASE)
        assert s.base_url == "https://api.confluent.cloud"
        assert s.telemetry_url == "https://api.telemetry.confluent.cloud"
        assert s.flink_base("AWS", "us-east-1") == "https://flink.us-east-1.aws.confluent.cloud"
        assert (s.billing.days_per_query, s.billing.page_size) == (30, 10000)
        assert s.flink_credentials() == ("K", s.api_secret)
        assert s.metrics.source == "metrics_api"

    def test_secret_never_in_repr(self) -> None:
        """The secret is a SecretStr: repr and str hide it."""
        s = CCloudSettings.model_validate(BASE)
        assert "S3CRET" not in repr(s)
        assert "S3CRET" not in str(s.model_dump())

    @pytest.mark.parametrize(
        ("extra", "field"),
        [
            ({"api_sekret": "x"}, "api_sekret"),
            ({"billing": {"days_per_query": 31}}, "days_per_query"),
            ({"billing": {"page_size": 20000}}, "page_size"),
            ({"metrics": {"source": "prometheus"}}, "prometheus"),
            ({"allocation": {"KAFKA_BASE": {"usage_ratio": 1.5}}}, "usage_ratio"),
            ({"allocation": {"KAFKA_BASE": {"metric": "cpu"}}}, "metric"),
            ({"flink_api_key": "F"}, "flink_api"),
            ({"flink_url": "https://flink.{zone}.x"}, "flink_url"),
            ({"metrics": {"requests_per_minute": 0}}, "requests_per_minute"),
            ({"metrics": {"resources_per_query": 0}}, "resources_per_query"),
        ],
    )
    def test_bad_settings_name_the_field(self, extra: dict[str, object], field: str) -> None:
        """Unknown keys and out-of-range values fail with the field in the message."""
        with pytest.raises(ValidationError) as info:
            CCloudSettings.model_validate({**BASE, **extra})
        assert field in str(info.value)

    def test_allocation_overrides_and_engine_keys_accepted(self) -> None:
        """Per product type overrides parse exactly; the engine's override keys are accepted."""
        s = CCloudSettings.model_validate(
            {
                **BASE,
                "allocation": {"kafka_num_ckus": {"usage_ratio": "0.5", "metric": "request_bytes"}},
                "allocator_overrides": {"SUPPORT": "pkg.mod:fn"},
                "identity_resolver_overrides": {},
            }
        )
        override = s.allocation["KAFKA_NUM_CKUS"]
        assert override.ratio() == Fraction(1, 2)
        assert override.metric == ["request_bytes"]
