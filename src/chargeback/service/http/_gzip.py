"""``/metrics`` in gzip without compressing the big part per scrape."""

from __future__ import annotations

import struct
import zlib
from collections.abc import MutableMapping, Sequence
from typing import Any

__all__ = ["accepts_gzip", "gzip_stream"]

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime


def gzip_stream(precompressed: Sequence[tuple[bytes, bytes, int]], tail: bytes) -> bytes:
    """Return one gzip member of the texts of ``precompressed`` followed by ``tail``.

    Each item is ``(text, deflate, crc)``: ``deflate`` holds ``text`` as raw DEFLATE
    blocks, sync-flushed and not final, and ``crc`` is its CRC-32. Only ``tail`` (the
    small service registry) is compressed here, so a scrape of a big organization's
    series costs no compression. The CRC of a later part is continued over its text.
    """
    crc = 0
    size = 0
    body = [_GZIP_HEADER]
    for text, deflate, part_crc in precompressed:
        crc = part_crc if size == 0 else zlib.crc32(text, crc)
        size += len(text)
        body.append(deflate)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body.append(compressor.compress(tail) + compressor.flush(zlib.Z_FINISH))
    crc = zlib.crc32(tail, crc) if size else zlib.crc32(tail)
    size += len(tail)
    body.append(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    return b"".join(body)


def accepts_gzip(scope: MutableMapping[str, Any]) -> bool:
    """Whether the request's ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it)."""
    for name, value in scope.get("headers", ()):
        if name.lower() != b"accept-encoding":
            continue
        for item in value.lower().split(b","):
            coding, _, params = item.partition(b";")
            if coding.strip() not in (b"gzip", b"*"):
                continue
            q = params.strip()
            if q.startswith(b"q="):
                try:
                    return float(q[2:]) > 0
                except ValueError:
                    return False
            return True
    return False
