"""The package's public surface is exactly what ``__all__`` says."""

import chargeback


class TestPublicApi:
    def test_all_is_sorted_and_unique(self) -> None:
        """``__all__`` is sorted and has no duplicates, so additions are reviewed."""
        assert list(chargeback.__all__) == sorted(set(chargeback.__all__))

    def test_all_matches_public_attributes(self) -> None:
        """Every public attribute of the package is in ``__all__`` and exists."""
        public = {name for name in vars(chargeback) if not name.startswith("_")}
        modules = {name for name in public if type(getattr(chargeback, name)).__name__ == "module"}
        assert set(chargeback.__all__) - {"__version__"} == public - modules
        for name in chargeback.__all__:
            assert hasattr(chargeback, name)
