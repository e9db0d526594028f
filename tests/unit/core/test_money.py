"""The exact split and fixed-point conversions (DESIGN §5)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.money import (
    MINOR_UNITS_PER_UNIT,
    format_amount,
    split,
    split_even,
    to_decimal,
    to_minor,
)

amounts = st.integers(min_value=-(10**18), max_value=10**18)
weights = st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=60)


class TestSplit:
    @given(amounts, weights)
    def test_parts_sum_to_amount(self, amount: int, ws: list[int]) -> None:
        """For any amount and any non-empty weights, the parts sum to the amount exactly."""
        assert sum(split(amount, ws)) == amount

    @given(amounts, weights)
    def test_parts_within_one_unit_of_exact_share(self, amount: int, ws: list[int]) -> None:
        """Every part is within one minor unit of its exact proportional share."""
        parts = split(amount, ws)
        total = sum(ws)
        for part, w in zip(parts, ws, strict=True):
            exact = Decimal(amount * w) / Decimal(total) if total else Decimal(amount) / len(ws)
            assert abs(Decimal(part) - exact) < 1

    @given(amounts, weights)
    def test_zero_weight_gets_nothing_when_others_weigh(self, amount: int, ws: list[int]) -> None:
        """An identity with zero weight gets zero when some other weight is positive."""
        parts = split(amount, ws)
        if sum(ws) > 0:
            for part, w in zip(parts, ws, strict=True):
                if w == 0:
                    assert part == 0

    @given(amounts, weights)
    def test_is_the_largest_remainder_method(self, amount: int, ws: list[int]) -> None:
        """Floors first; each leftover unit to the largest remainder, ties to the earlier part."""
        total = sum(ws)
        if total == 0:
            assert split(amount, ws) == split_even(amount, len(ws))
            return
        expected = [(amount * w) // total for w in ws]
        remainders = [(amount * w) % total for w in ws]
        for _ in range(amount - sum(expected)):
            best = max(range(len(ws)), key=lambda i: (remainders[i], -i))
            expected[best] += 1
            remainders[best] = -1  # a part gets at most one leftover unit
        assert split(amount, ws) == expected

    @given(amounts, weights)
    def test_deterministic(self, amount: int, ws: list[int]) -> None:
        """The same input always gives the same parts."""
        assert split(amount, ws) == split(amount, list(ws))

    def test_largest_remainder_goes_to_largest_fraction(self) -> None:
        """The leftover unit goes to the part with the largest fractional remainder."""
        # 10 split 1:1:1 -> 3.33 each; one leftover goes to the first (tie -> position).
        assert split(10, [1, 1, 1]) == [4, 3, 3]
        # 100 split 1:2 -> 33.3 / 66.6: the leftover goes to the .6 part.
        assert split(100, [1, 2]) == [33, 67]

    def test_negative_amounts_split_like_positive(self) -> None:
        """A credit splits with the same invariant and mirrored rounding."""
        parts = split(-100, [1, 2])
        assert sum(parts) == -100
        assert parts == [-33, -67]

    def test_all_zero_weights_split_evenly(self) -> None:
        """All-zero weights mean an even split."""
        assert split(7, [0, 0, 0]) == [3, 2, 2]

    def test_empty_weights_rejected(self) -> None:
        """Splitting over nobody is an error that says how to fix it."""
        with pytest.raises(ValueError, match="at least one weight"):
            split(5, [])

    def test_negative_weight_rejected(self) -> None:
        """A negative weight is an error."""
        with pytest.raises(ValueError, match=">= 0"):
            split(5, [1, -1])


class TestSplitEven:
    @given(amounts, st.integers(min_value=1, max_value=500))
    def test_even_parts_sum_and_differ_by_at_most_one(self, amount: int, n: int) -> None:
        """Even parts sum to the amount and differ by at most one minor unit."""
        parts = split_even(amount, n)
        assert sum(parts) == amount
        assert max(parts) - min(parts) <= 1

    def test_zero_parts_rejected(self) -> None:
        """Zero parts is an error."""
        with pytest.raises(ValueError, match="at least one"):
            split_even(1, 0)


class TestConversions:
    @given(st.decimals(min_value=-(10**9), max_value=10**9, places=9, allow_nan=False))
    def test_decimal_round_trip(self, value: Decimal) -> None:
        """A decimal with at most nine places survives to_minor/to_decimal unchanged."""
        assert to_decimal(to_minor(value)) == value

    def test_float_read_through_shortest_repr(self) -> None:
        """A JSON float like 97.2 becomes exactly 97.2, not its binary approximation."""
        assert to_minor(97.2) == 97_200_000_000
        assert to_minor(0.1) + to_minor(0.2) == to_minor("0.3")

    def test_integers_and_strings(self) -> None:
        """Integers are whole units; numeric strings are exact."""
        assert to_minor(3) == 3 * MINOR_UNITS_PER_UNIT
        assert to_minor("-0.000000001") == -1

    def test_extra_places_rounded_half_even_once(self) -> None:
        """More than nine decimal places round half-to-even at the edge."""
        assert to_minor("0.0000000005") == 0
        assert to_minor("0.0000000015") == 2

    @pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", float("nan"), True])
    def test_non_numbers_rejected(self, bad: object) -> None:
        """Non-numbers, NaN and infinities are rejected with a clear error."""
        with pytest.raises(ValueError, match="expected"):
            to_minor(bad)  # type: ignore[arg-type]

    def test_format_amount(self) -> None:
        """Amounts print as plain decimals, optionally rounded to fewer places."""
        assert format_amount(1_234_567_891) == "1.234567891"
        assert format_amount(1_235_000_000, 2) == "1.24"
        assert format_amount(-5, 9) == "-0.000000005"
