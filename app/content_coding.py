"""HTTP content codings (RFC 9110 section 8.4.1): gzip and deflate, both ways.

A request body is decoded under a size limit that holds for the decoded bytes, so a small
compressed body that inflates past it (a compression bomb) stops at the limit, in bounded
memory. `deflate` is the zlib format (RFC 1950), as tritonclient and RFC 9110 mean it.
"""

import zlib

# coding -> zlib's wbits for it; x-gzip is gzip's old name (RFC 9110 section 8.4.1.3).
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
SUPPORTED = "gzip, deflate"  # what a 415 answers in Accept-Encoding


class UnsupportedCoding(ValueError):
    """A coding other than gzip, deflate or identity."""


class CorruptBody(ValueError):
    """Bytes that aren't what their coding says."""


class TooLarge(ValueError):
    """The decoded body is over the limit."""


def decode(header: str, data: bytes, limit: int) -> bytes:
    """The body under a Content-Encoding header value: its codings undone in reverse order
    of application, each output held to `limit` bytes."""
    codings = [coding.strip().lower() for coding in header.split(",") if coding.strip()]
    for coding in codings:
        if coding != "identity" and coding not in WBITS:
            raise UnsupportedCoding(coding)
    for coding in reversed(codings):
        if coding != "identity":
            data = _inflate(coding, data, limit)
    return data


def encode(coding: str, data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=WBITS[coding])
    return compressor.compress(data) + compressor.flush()


def _inflate(coding: str, data: bytes, limit: int) -> bytes:
    """gzip may hold several members one after the other (RFC 1952); deflate holds one."""
    output = bytearray()
    while True:
        inflater = zlib.decompressobj(WBITS[coding])
        try:
            output += inflater.decompress(data, limit + 1 - len(output))
        except zlib.error as error:
            raise CorruptBody(f"{coding}: {error}") from None
        if len(output) > limit:
            raise TooLarge(coding)
        if not inflater.eof:
            raise CorruptBody(f"{coding}: the compressed data ends early")
        data = inflater.unused_data
        if not data:
            return bytes(output)
        if WBITS[coding] == zlib.MAX_WBITS:
            raise CorruptBody(f"{coding}: bytes after the end of the compressed data")
