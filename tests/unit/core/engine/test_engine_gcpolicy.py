"""The collector policy while dates are worked on: paused, nested, restored, cycles still freed."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from chargeback.core.engine.gcpolicy import collect_young, young_collections_only


class _Node:
    """An object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    """Make two nodes that only reference each other; return a weak reference to one."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


class TestYoungCollectionsOnly:
    def test_pauses_inside_and_restores_after_nesting(self):
        """Automatic collection is off inside (also nested) and back on after the outermost."""
        assert gc.isenabled()
        with young_collections_only():
            assert not gc.isenabled()
            with young_collections_only():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled()

    def test_leaves_a_disabled_collector_disabled(self):
        """If the collector was off before, it stays off after."""
        gc.disable()
        try:
            with young_collections_only():
                pass
            assert not gc.isenabled()
        finally:
            gc.enable()

    def test_cycles_made_inside_are_freed_on_leaving(self):
        """A reference cycle created during a date is collected when the date is left."""
        with young_collections_only():
            ref = _cycle()
            assert ref() is not None  # no automatic collection inside
        assert ref() is None

    def test_collect_young_frees_cycles_inside_the_block(self):
        """The date loop's periodic collection frees a cycle while collection stays off."""
        with young_collections_only():
            ref = _cycle()
            assert ref() is not None
            collect_young()
            assert ref() is None
            assert not gc.isenabled()

    def test_concurrent_users_restore_once(self):
        """Two threads overlapping in the block leave the collector enabled at the end."""
        inside = threading.Barrier(2)

        def work() -> None:
            with young_collections_only():
                inside.wait(timeout=10)

        threads = [threading.Thread(target=work) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert gc.isenabled()

    def test_restored_after_an_exception(self):
        """An error inside the block still restores the collector."""
        with pytest.raises(RuntimeError), young_collections_only():
            raise RuntimeError("boom")
        assert gc.isenabled()
