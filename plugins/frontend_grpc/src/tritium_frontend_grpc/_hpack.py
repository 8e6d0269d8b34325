"""HPACK (RFC 7541) for the native gRPC transport: a complete decoder, and the few fixed blocks the server sends.

The decoder keeps the connection's dynamic table and bounds everything a client controls: integers, string
lengths, the table size (never above what the server advertised) and the decoded header list (fields past
``max_list_size`` are dropped and the block is flagged, so the table stays in step while the request is
refused). Huffman-coded strings are decoded with the ``hpack`` package's decoder and remembered per
connection, since clients repeat the same few strings.

A block that changes nothing in the dynamic table (only indexed fields and literals without indexing) decodes
to the same list as long as the table has not changed, so such blocks are cached per table generation: a gRPC
client that sends the same headers on every call costs one dictionary lookup per request.

The server's own blocks (``:status 200``, ``content-type``, ``grpc-status``...) are literals without indexing,
so the server keeps no encoder table; the first block on a connection sets the table size it uses to 0.
"""

from __future__ import annotations

from collections import deque

from hpack.huffman_table import decode_huffman

STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)
"""RFC 7541 Appendix A: index 1 is ``STATIC_TABLE[0]``."""

_STATIC_COUNT = len(STATIC_TABLE)
ENTRY_OVERHEAD = 32
"""RFC 7541 4.1: an entry's size is its name and value lengths plus 32."""
DEFAULT_TABLE_SIZE = 4096
_MAX_INTEGER = 1 << 32
_STRING_CACHE_SIZE = 512
_BLOCK_CACHE_SIZE = 64

Header = tuple[str, str]


class HpackError(Exception):
    """A header block that is not valid HPACK: a connection error (COMPRESSION_ERROR)."""


def _integer(data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
    """The integer at ``data[pos]`` with an N-bit prefix, and the position after it."""
    if pos >= len(data):
        raise HpackError("truncated integer")
    limit = (1 << prefix_bits) - 1
    value = data[pos] & limit
    pos += 1
    if value < limit:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HpackError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if value > _MAX_INTEGER:
            raise HpackError("integer too large")
        if byte < 0x80:
            return value, pos
        shift += 7


def encode_integer(value: int, prefix_bits: int, first_byte_flags: int) -> bytes:
    """``value`` with an N-bit prefix; ``first_byte_flags`` fills the first byte's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first_byte_flags | value,))
    out = bytearray((first_byte_flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_literal(name: str, value: str) -> bytes:
    """A literal header field without indexing, new name, plain (not Huffman) strings."""
    raw_name = name.encode("latin-1")
    raw_value = value.encode("latin-1")
    return (
        b"\x00"
        + encode_integer(len(raw_name), 7, 0)
        + raw_name
        + encode_integer(len(raw_value), 7, 0)
        + raw_value
    )


TABLE_SIZE_ZERO = encode_integer(0, 5, 0x20)
"""A dynamic table size update to 0: the server's encoder keeps no table (first block of a connection)."""


class HpackDecoder:
    """The decoding side of one HTTP/2 connection's header compression."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE, max_list_size: int = 64 * 1024) -> None:
        self._entries: deque[Header] = deque()  # newest first: dynamic index 62 is _entries[0]
        self._size = 0
        self._max_size = max_table_size
        self._limit = max_table_size  # the SETTINGS_HEADER_TABLE_SIZE the server advertised
        self._max_list_size = max_list_size
        self._generation = 0
        self._strings: dict[bytes, str] = {}
        self._blocks: dict[bytes, tuple[int, list[Header], bool]] = {}

    @property
    def table_size(self) -> int:
        """Bytes the dynamic table holds (RFC 7541 sizes)."""
        return self._size

    def decode(self, block: bytes) -> tuple[list[Header], bool]:
        """The header list of ``block`` and whether it fits ``max_list_size`` (fields beyond are dropped).

        Raises :class:`HpackError` for an invalid block."""
        cached = self._blocks.get(block)
        if cached is not None and cached[0] == self._generation:
            return cached[1], cached[2]
        generation = self._generation
        headers, fits = self._decode(block)
        if self._generation == generation:
            if len(self._blocks) >= _BLOCK_CACHE_SIZE:
                self._blocks.clear()
            self._blocks[block] = (generation, headers, fits)
        return headers, fits

    def _decode(self, block: bytes) -> tuple[list[Header], bool]:
        headers: list[Header] = []
        list_size = 0
        fits = True
        pos = 0
        end = len(block)
        size_update_allowed = True
        while pos < end:
            byte = block[pos]
            if byte & 0x80:  # indexed header field
                index, pos = _integer(block, pos, 7)
                header = self._lookup(index)
            elif byte & 0xC0 == 0x40:  # literal with incremental indexing
                header, pos = self._literal(block, pos, 6)
                self._add(header)
            elif byte & 0xE0 == 0x20:  # dynamic table size update
                if not size_update_allowed:
                    raise HpackError("dynamic table size update after a header field")
                size, pos = _integer(block, pos, 5)
                if size > self._limit:
                    raise HpackError(f"dynamic table size {size} above the advertised {self._limit}")
                self._max_size = size
                self._evict(0)
                self._generation += 1
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                header, pos = self._literal(block, pos, 4)
            size_update_allowed = False
            list_size += len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if list_size > self._max_list_size:
                fits = False
            elif fits:
                headers.append(header)
        return headers, fits

    def _lookup(self, index: int) -> Header:
        if index == 0:
            raise HpackError("index 0")
        if index <= _STATIC_COUNT:
            return STATIC_TABLE[index - 1]
        dynamic = index - _STATIC_COUNT - 1
        if dynamic >= len(self._entries):
            raise HpackError(f"index {index} beyond the tables")
        return self._entries[dynamic]

    def _literal(self, block: bytes, pos: int, prefix_bits: int) -> tuple[Header, int]:
        index, pos = _integer(block, pos, prefix_bits)
        if index:
            name = self._lookup(index)[0]
        else:
            name, pos = self._string(block, pos)
        value, pos = self._string(block, pos)
        return (name, value), pos

    def _string(self, block: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(block):
            raise HpackError("truncated string")
        huffman = block[pos] & 0x80
        length, pos = _integer(block, pos, 7)
        end = pos + length
        if end > len(block):
            raise HpackError("truncated string")
        raw = block[pos:end]
        if not huffman:
            return raw.decode("latin-1"), end
        text = self._strings.get(raw)
        if text is None:
            try:
                text = decode_huffman(raw).decode("latin-1")
            except Exception as exc:  # hpack raises its own HPACKDecodingError
                raise HpackError(f"invalid Huffman string: {exc}") from None
            if len(self._strings) >= _STRING_CACHE_SIZE:
                self._strings.clear()
            self._strings[raw] = text
        return text, end

    def _add(self, header: Header) -> None:
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        self._generation += 1
        if size > self._max_size:  # RFC 7541 4.4: an entry larger than the table empties it
            self._entries.clear()
            self._size = 0
            return
        self._evict(size)
        self._entries.appendleft(header)
        self._size += size

    def _evict(self, room: int) -> None:
        entries = self._entries
        while entries and self._size + room > self._max_size:
            name, value = entries.pop()
            self._size -= len(name) + len(value) + ENTRY_OVERHEAD
