"""Request and response compression (``Content-Encoding`` / ``Accept-Encoding``: gzip, deflate).

Decompression is bounded: the output may not exceed ``--http-max-input-size`` (Triton's message), so a
small "zip bomb" cannot grow into a large allocation. Large bodies are (de)compressed on a worker thread
(zlib releases the GIL) so the event loop keeps serving other requests.
"""

from __future__ import annotations

import zlib

from tritium import StatusCode, TritiumError
from tritium_frontend_http._errors import invalid

IDENTITY = "identity"
GZIP = "gzip"
DEFLATE = "deflate"
OFFLOAD_BYTES = 1 << 20
"""Bodies at least this large are (de)compressed on a worker thread."""


def request_encoding(header: str | None) -> str | None:
    """The request's ``Content-Encoding``: ``gzip``, ``deflate``, ``identity``, or None when unsupported."""
    if header is None or header == "" or header == IDENTITY:
        return IDENTITY
    if header in (GZIP, DEFLATE):
        return header
    return None


def response_encoding(accept: str | None) -> str:
    """Triton's ``CompressionTypeUsed``: the best-weighted of identity, deflate and gzip in
    ``Accept-Encoding`` (ties keep the first); identity when none is acceptable."""
    if not accept:
        return IDENTITY
    best, weight = IDENTITY, 0.0
    for part in accept.split(","):
        start = len(part) - len(part.lstrip(" "))
        if start == len(part):
            continue
        q_pos = part.find(";q=")
        if q_pos != -1 and start >= q_pos:
            continue
        kind = part[start:q_pos] if q_pos != -1 else part[start:]
        part_weight = 1.0
        if q_pos != -1:
            try:
                part_weight = float(part[q_pos + 3 :].strip() or "x")
            except ValueError:
                continue
        if kind in (IDENTITY, DEFLATE, GZIP) and part_weight > weight:
            best, weight = kind, part_weight
    return best


def decompress(data: bytes, limit: int) -> bytes:
    """Inflate a gzip or zlib stream (auto-detected, as Triton's ``inflateInit2(15 | 32)``), at most
    ``limit`` bytes."""
    if not data:
        raise invalid("nothing to be decompressed")
    inflater = zlib.decompressobj(15 | 32)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise invalid(f"failed to decompress the request body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise invalid(
            f"Decompressed data size exceeds the maximum allowed value of {limit} bytes. "
            "Use --http-max-input-size to increase the limit."
        )
    return out


def compress(data: bytes, encoding: str) -> bytes:
    """Compress a response body (gzip container, or zlib's for ``deflate`` as Triton writes it)."""
    if encoding == GZIP:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    elif encoding == DEFLATE:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 15)
    else:
        raise TritiumError(StatusCode.INTERNAL, f"unknown response encoding {encoding!r}")
    return compressor.compress(data) + compressor.flush()
