"""The fast JSON text is exactly json.dumps' (stored digests and columns depend on it)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.jsontext import compact, compact_sorted

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


@given(_values)
def test_compact_is_json_dumps(value: object) -> None:
    """Any nesting of JSON values encodes to json.dumps' compact text."""
    assert compact(value) == json.dumps(value, separators=(",", ":"))


@given(_values)
def test_compact_sorted_is_json_dumps_sorted(value: object) -> None:
    """With sorted keys too."""
    assert compact_sorted(value) == json.dumps(value, separators=(",", ":"), sort_keys=True)


def test_billing_line_tuple_shape() -> None:
    """The digest's input: text (non-ASCII too), ints beyond 64 bits, None, pairs."""
    value = ("id-é", "2026-01-01", 10**30, None, [("k", 'v\n"')], -5, math.inf)
    assert compact(value) == json.dumps(value, separators=(",", ":"))
    assert (
        compact(value)
        == '["id-\\u00e9","2026-01-01",' + str(10**30) + ',null,[["k","v\\n\\""]],-5,Infinity]'
    )


def test_unknown_type_raises_like_json_dumps() -> None:
    """An object JSON cannot encode is a TypeError, as with json.dumps."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact({"when": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        json.dumps({"when": object()})
