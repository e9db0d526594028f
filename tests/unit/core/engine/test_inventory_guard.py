"""The deletion guard: which types an inventory sync may delete from."""

from __future__ import annotations

from chargeback.core.engine.inventory import deletable_types


class TestDeletableTypes:
    def test_small_loss_is_deletable(self) -> None:
        """Losing a few items of a type (within the ratio) allows deletion."""
        known = {"sa": {"a", "b", "c", "d"}}
        assert deletable_types(known, {"sa": {"a", "b", "c"}}, 0.5) == {"sa"}

    def test_empty_listing_is_not(self) -> None:
        """A type listed empty while storage knows items deletes nothing."""
        assert deletable_types({"sa": {"a"}}, {}, 0.5) == frozenset()

    def test_large_loss_is_not(self) -> None:
        """Losing more than the ratio of a type deletes nothing of it; other types unaffected."""
        known = {"sa": {"a", "b", "c", "d"}, "cluster": {"x"}}
        listed = {"sa": {"a"}, "cluster": {"x"}}
        assert deletable_types(known, listed, 0.5) == {"cluster"}

    def test_exactly_at_ratio_is_deletable(self) -> None:
        """Deleting exactly the ratio is allowed; the guard trips only above it."""
        assert deletable_types({"sa": {"a", "b"}}, {"sa": {"a"}}, 0.5) == {"sa"}

    def test_new_types_are_deletable(self) -> None:
        """A type storage has never seen has nothing to lose."""
        assert deletable_types({}, {"pool": {"p"}}, 0.5) == {"pool"}
