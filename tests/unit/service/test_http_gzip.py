"""/metrics in gzip: pre-compressed parts and a fresh tail make one valid gzip member."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st

from chargeback.service.http import gzip_stream

texts = st.binary(min_size=0, max_size=3000)


def precompress(text: bytes) -> tuple[bytes, bytes, int]:
    """Compress ``text`` the way the prometheus emitter does at refresh."""
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return text, c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(text)


class TestGzipStream:
    @given(st.lists(texts, max_size=3), texts)
    def test_decodes_to_the_concatenation(self, parts: list[bytes], tail: bytes) -> None:
        """Any number of pre-compressed parts plus a tail decode to their concatenation."""
        body = gzip_stream([precompress(p) for p in parts], tail)
        assert gzip.decompress(body) == b"".join(parts) + tail

    @given(st.lists(texts, min_size=1, max_size=3), texts)
    def test_is_one_member_for_single_member_decoders(
        self, parts: list[bytes], tail: bytes
    ) -> None:
        """A decoder that reads only the first gzip member (as httpx does) gets everything."""
        body = gzip_stream([precompress(p) for p in parts], tail)
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        assert decoder.decompress(body) + decoder.flush() == b"".join(parts) + tail
        assert decoder.eof
        assert decoder.unused_data == b""
