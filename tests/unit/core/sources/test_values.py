"""Numbers and days out of payloads: exact, whatever form the API sends them in."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.sources.values import MAX_USAGE, day_of, parse_decimal, usage_value


class TestUsageValue:
    @settings(max_examples=300, deadline=None)
    @given(
        value=st.floats(allow_nan=False, allow_infinity=False)
        | st.integers(-(2**60), 2**60).map(float)
        | st.integers(-(2**60), 2**60),
        scale=st.sampled_from([1, 1000]),
    )
    def test_every_value_rounds_like_its_decimal(self, value: float | int, scale: int) -> None:
        """A point's value becomes round_half_even(Decimal(repr(value)) * scale), whatever
        path it takes (integral floats and ints have a fast one), or None beyond MAX_USAGE."""
        exact = int((Decimal(repr(value)) * scale).to_integral_value(rounding=ROUND_HALF_EVEN))
        expected = exact if abs(exact) <= MAX_USAGE else None
        assert usage_value(value, scale) == expected

    def test_weights_beyond_64_bits_are_not_numbers(self) -> None:
        """A sample no store can hold (and no meter can measure) is skipped like text."""
        assert usage_value("1e999") is None
        assert usage_value(2**63) is None
        assert usage_value(-(2**63)) is None
        assert usage_value(MAX_USAGE) == MAX_USAGE
        assert usage_value(2**62, 1000) is None  # in range until scaled

    def test_text_numbers_and_non_numbers(self) -> None:
        """Numeric strings are read exactly; booleans, NaN and text are not numbers."""
        assert usage_value("2.5", 1) == 2  # half to even
        assert usage_value("1e3") == 1000
        assert usage_value(True) is None
        assert usage_value("NaN") is None
        assert usage_value("many") is None
        assert parse_decimal(0.1) == Decimal("0.1")


class TestDayOf:
    def test_iso_and_unix_times(self) -> None:
        """ISO timestamps (any offset) and Unix seconds give their UTC day."""
        assert day_of("2026-03-01T23:30:00-01:00") == dt.date(2026, 3, 2)
        assert day_of("2026-03-01T00:00:00.000Z") == dt.date(2026, 3, 1)
        assert day_of(86400 * 2) == dt.date(1970, 1, 3)
        assert day_of("yesterday") is None
        assert day_of(None) is None
