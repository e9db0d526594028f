"""Allocator and identity-resolver overrides by dotted path."""

from __future__ import annotations

from typing import cast

import pytest

from chargeback.core import money
from chargeback.core.plugin.overrides import load_overrides, resolve_dotted
from chargeback.errors import ConfigError


class TestResolveDotted:
    def test_colon_and_dot_forms(self) -> None:
        """Both package.module:callable and package.module.callable resolve."""
        assert resolve_dotted("chargeback.core.money:split") is money.split
        assert resolve_dotted("chargeback.core.money.split_even") is money.split_even

    def test_malformed(self) -> None:
        """A path without a module part is rejected."""
        with pytest.raises(ValueError, match=r"package\.module"):
            resolve_dotted("split")


class TestLoadOverrides:
    def test_resolves_per_product_type(self) -> None:
        """Each product type maps to the resolved callable."""
        o = load_overrides(
            "t1",
            {
                "allocator_overrides": {"A": "chargeback.core.money:split"},
                "identity_resolver_overrides": {"B": "chargeback.core.money.split_even"},
            },
        )
        assert list(o.allocators) == ["A"]
        assert list(o.resolvers) == ["B"]
        assert o.allocators["A"] is cast(object, money.split)
        assert o.resolvers["B"] is cast(object, money.split_even)

    def test_absent_means_none(self) -> None:
        """No override keys: no overrides."""
        o = load_overrides("t1", {"other": 1})
        assert not o.allocators
        assert not o.resolvers

    @pytest.mark.parametrize(
        ("path", "fragment"),
        [
            ("no.such.module:fn", "ModuleNotFoundError"),
            ("chargeback.core.money:nope", "AttributeError"),
            ("chargeback.core.money:MINOR_UNITS_PER_UNIT", "not a CostAllocator"),
            ("nodots", "ValueError"),
        ],
    )
    def test_errors_name_tenant_product_and_path(self, path: str, fragment: str) -> None:
        """A bad path is a ConfigError naming the tenant, the product type and the path."""
        with pytest.raises(ConfigError) as info:
            load_overrides("acme", {"allocator_overrides": {"KAFKA_BASE": path}})
        message = str(info.value)
        assert "'acme'" in message
        assert "'KAFKA_BASE'" in message
        assert repr(path) in message
        assert fragment in message
        assert info.value.field == "tenants.acme.plugin_settings.allocator_overrides.KAFKA_BASE"

    def test_not_a_mapping(self) -> None:
        """The override setting must be a mapping."""
        with pytest.raises(ConfigError, match="must map product types"):
            load_overrides("acme", {"identity_resolver_overrides": ["x"]})
