"""Compact JSON text for digests and stored columns, built without ``json.dumps``' overhead.

``json.dumps(value, separators=(",", ":"))`` builds a new :class:`json.JSONEncoder`
at every call that passes options, and its ``encode`` sets up the C encoder again,
which costs more than the encoding itself (figures in bench/README.md). The hot paths
(the per-line billing digest, the stored ``attributes`` of every line) call it
~200k times in a 90-day backfill of a large organization, so the C encoder is made
once here and called directly.

The output is exactly ``json.dumps(value, separators=(",", ":"), sort_keys=...)``
(a property test holds it to that): digests stored by earlier versions stay valid.
Values must not contain themselves (no circular-reference check); they are plain
tuples, lists, dicts, text and numbers built by the caller.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable

__all__ = ["compact", "compact_sorted"]


def _encoder(*, sort_keys: bool) -> Callable[[object], str]:
    plain = json.JSONEncoder(separators=(",", ":"), sort_keys=sort_keys)
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - CPython always has _json
        return plain.encode
    # The arguments JSONEncoder.iterencode passes, with no markers dict.
    encode_one = c_make_encoder(
        None,  # markers: no circular-reference check (see the module docstring)
        plain.default,  # unknown types: the same TypeError as json.dumps
        json.encoder.encode_basestring_ascii,
        None,  # indent
        ":",  # key separator
        ",",  # item separator
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan, like json.dumps
    )
    join = "".join

    def encode(value: object) -> str:
        return join(encode_one(value, 0))

    return encode


compact: Callable[[object], str] = _encoder(sort_keys=False)
"""``json.dumps(value, separators=(",", ":"))``, faster."""

compact_sorted: Callable[[object], str] = _encoder(sort_keys=True)
"""``json.dumps(value, separators=(",", ":"), sort_keys=True)``, faster."""
