"""The native transport's HPACK decoder against the reference encoder (the ``hpack`` package).

Header lists encoded by ``hpack.Encoder`` (dynamic table, evictions, Huffman on and off, table size updates,
never-indexed fields) decode to the input, block after block on one connection; anything invalid is an
:class:`HpackError` (a COMPRESSION_ERROR for the connection), never another exception; the list bound drops
fields without losing the table's step; the per-generation block cache never answers from a stale table.
"""

from __future__ import annotations

import hpack
import pytest
from hpack.table import HeaderTable
from hypothesis import given, settings
from hypothesis import strategies as st
from tritium_frontend_grpc._hpack import (
    DEFAULT_TABLE_SIZE,
    ENTRY_OVERHEAD,
    STATIC_TABLE,
    HpackDecoder,
    HpackError,
    encode_integer,
    encode_literal,
)

TOKEN = "abcdefghijklmnopqrstuvwxyz0123456789-_."
names = st.text(alphabet=TOKEN, min_size=1, max_size=20)
# A few recurring names, so that the encoder finds them in its table and indexes names and whole fields.
common_names = st.sampled_from(("content-type", "te", "grpc-timeout", "x-request-id", "authorization", "x-a"))
values = st.one_of(
    st.just(""),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0xFF), max_size=30),
    st.text(alphabet="xyz", min_size=200, max_size=1500),  # long values: evictions, entries above the table
)
common_values = st.sampled_from(("", "application/grpc", "trailers", "1S", "abc"))
fields = st.tuples(st.one_of(names, common_names), st.one_of(values, common_values), st.booleans())
header_lists = st.lists(fields, max_size=12)
table_sizes = st.one_of(st.none(), st.sampled_from((0, 64, 256, 1024, DEFAULT_TABLE_SIZE)), st.integers(0, 4096))


def encode(encoder: hpack.Encoder, headers: list[tuple[str, str, bool]], huffman: bool) -> bytes:
    """``headers`` as latin-1 bytes (hpack would encode ``str`` as UTF-8), sensitive ones never indexed."""
    return encoder.encode(
        [(name.encode("latin-1"), value.encode("latin-1"), sensitive) for name, value, sensitive in headers],
        huffman=huffman,
    )


def table_bytes(table: HeaderTable) -> int:
    """The RFC 7541 size of a reference table's dynamic entries (hpack keeps it in a private field)."""
    size = sum(len(name) + len(value) + ENTRY_OVERHEAD for name, value in table.dynamic_entries)
    assert size == table._current_size
    return size


def test_static_table_is_rfc_7541_appendix_a() -> None:
    reference = tuple((name.decode(), value.decode()) for name, value in HeaderTable.STATIC_TABLE)
    assert reference == STATIC_TABLE
    decoder = HpackDecoder()
    for index, header in enumerate(STATIC_TABLE, 1):
        assert decoder.decode(encode_integer(index, 7, 0x80)) == ([header], True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(header_lists, st.booleans(), table_sizes), min_size=1, max_size=8))
def test_blocks_in_sequence_decode_to_the_reference_encoders_input(
    blocks: list[tuple[list[tuple[str, str, bool]], bool, int | None]],
) -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    for headers, huffman, table_size in blocks:
        if table_size is not None and table_size != encoder.header_table_size:
            encoder.header_table_size = table_size  # (hpack forgets a change set twice to the same size)
        block = encode(encoder, headers, huffman)
        assert decoder.decode(block) == ([(name, value) for name, value, _ in headers], True)
        assert decoder.table_size == table_bytes(encoder.header_table)
        # The same bytes again: a block that indexed nothing comes from the cache; one that did now refers to
        # a changed table, so a reference decoder holding the same table says what it means now.
        again = hpack.Decoder()
        again.header_table.maxsize = encoder.header_table.maxsize
        again.header_table.dynamic_entries = encoder.header_table.dynamic_entries.copy()
        again.header_table._current_size = table_bytes(encoder.header_table)
        try:
            expected = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in again.decode(block, raw=True)]
        except hpack.HPACKError:
            with pytest.raises(HpackError):
                decoder.decode(block)
            return  # a connection error: the connection (and its table) ends here
        assert decoder.decode(block) == (expected, True)
        assert decoder.table_size == table_bytes(again.header_table)
        # The encoder goes on from the table the second decode left.
        encoder.header_table.dynamic_entries = again.header_table.dynamic_entries.copy()
        encoder.header_table._current_size = table_bytes(again.header_table)


@settings(max_examples=100, deadline=None)
@given(header_lists, st.booleans())
def test_never_indexed_fields_leave_the_table_alone(headers: list[tuple[str, str, bool]], huffman: bool) -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    sensitive = [(name, value, True) for name, value, _ in headers]
    block = encode(encoder, sensitive, huffman)
    assert decoder.decode(block) == ([(name, value) for name, value, _ in headers], True)
    # Fields of the static table are sent indexed; everything else as never-indexed literals that add nothing.
    assert decoder.table_size == 0


def test_table_size_zero_then_back_drops_every_entry() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    first = [("x-a", "1", False), ("x-b", "2", False)]
    assert decoder.decode(encode(encoder, first, True))[0] == [("x-a", "1"), ("x-b", "2")]
    assert decoder.table_size == 2 * (3 + 1 + ENTRY_OVERHEAD)
    encoder.header_table_size = 0
    encoder.header_table_size = 4096
    block = encode(encoder, first, False)
    assert block[:2] == b"\x20\x3f"  # size update to 0, then one to 4096 (a multi-byte integer)
    assert decoder.decode(block)[0] == [("x-a", "1"), ("x-b", "2")]
    assert decoder.table_size == 2 * (3 + 1 + ENTRY_OVERHEAD)


def test_an_entry_larger_than_the_table_empties_it() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    decoder.decode(encode(encoder, [("x-a", "1", False)], False))
    big = "v" * (DEFAULT_TABLE_SIZE)
    assert decoder.decode(encode(encoder, [("x-big", big, False)], False))[0] == [("x-big", big)]
    assert decoder.table_size == 0 == table_bytes(encoder.header_table)
    with pytest.raises(HpackError, match="beyond"):
        decoder.decode(encode_integer(62, 7, 0x80))


# --------------------------------------------------------------------------------------------- bounds
@settings(max_examples=100, deadline=None)
@given(header_lists, st.lists(header_lists, min_size=1, max_size=4), st.booleans())
def test_list_bound_drops_fields_and_keeps_the_table_in_step(
    big: list[tuple[str, str, bool]], later: list[list[tuple[str, str, bool]]], huffman: bool
) -> None:
    limit = 300
    encoder = hpack.Encoder()
    decoder = HpackDecoder(max_list_size=limit)

    def expected(headers: list[tuple[str, str, bool]]) -> tuple[list[tuple[str, str]], bool]:
        kept: list[tuple[str, str]] = []
        size = 0
        for name, value, _ in headers:
            size += len(name) + len(value) + ENTRY_OVERHEAD
            if size > limit:
                return kept, False
            kept.append((name, value))
        return kept, True

    for headers in [big, *later]:
        assert decoder.decode(encode(encoder, headers, huffman)) == expected(headers)
        assert decoder.table_size == table_bytes(encoder.header_table)


def test_list_bound_exceeded_then_indexed_references_still_resolve() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder(max_list_size=200)
    headers = [(f"x-{i}", "v" * 20, False) for i in range(10)]
    kept, fits = decoder.decode(encode(encoder, headers, True))
    assert not fits
    assert kept == [(f"x-{i}", "v" * 20) for i in range(3)]  # 3 * 55 = 165; the 4th passes 200
    # The same fields again: all indexed now (the dropped ones entered the table too), and they fit one by one.
    for i in range(10):
        block = encode(encoder, [(f"x-{i}", "v" * 20, False)], True)
        assert len(block) == 1
        assert decoder.decode(block) == ([(f"x-{i}", "v" * 20)], True)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_hpack_error(data: bytes) -> None:
    decoder = HpackDecoder(max_list_size=512)
    for _ in range(2):  # twice: the second pass sees the table (and the cache) the first one left
        try:
            headers, _ = decoder.decode(data)
        except HpackError:
            continue
        assert all(isinstance(name, str) and isinstance(value, str) for name, value in headers)


@settings(max_examples=200, deadline=None)
@given(header_lists, st.booleans(), st.data())
def test_truncated_blocks_raise_hpack_error(
    headers: list[tuple[str, str, bool]], huffman: bool, data: st.DataObject
) -> None:
    """A prefix of a valid block decodes to a prefix of its list (cut at a field boundary) or is an HpackError."""
    block = encode(hpack.Encoder(), headers, huffman)
    cut = data.draw(st.integers(0, max(0, len(block) - 1)))
    try:
        decoded, fits = HpackDecoder().decode(block[:cut])
    except HpackError:
        return
    assert fits
    assert decoded == [(name, value) for name, value, _ in headers[: len(decoded)]]
    assert len(decoded) < len(headers) or not headers


@pytest.mark.parametrize(
    ("block", "message"),
    [
        pytest.param(b"\x80", "index 0", id="indexed-0"),
        pytest.param(b"\x40\x00\x00" + b"\x80", "index 0", id="indexed-0-after-a-literal"),
        pytest.param(b"\xbe", "beyond", id="index-62-empty-table"),
        pytest.param(encode_integer(1000, 7, 0x80), "beyond", id="index-1000"),
        pytest.param(b"\x7f\x20\x00", "beyond", id="literal-name-index-beyond"),
        pytest.param(encode_integer(4097, 5, 0x20), "above the advertised", id="size-update-above-limit"),
        pytest.param(b"\x82" + b"\x20", "after a header field", id="size-update-after-a-field"),
        pytest.param(b"\xff", "truncated integer", id="truncated-integer"),
        pytest.param(b"\xff\x80\x80", "truncated integer", id="truncated-integer-continuation"),
        pytest.param(b"\x00\x05ab", "truncated string", id="truncated-name"),
        pytest.param(b"\x00\x01a", "truncated string", id="missing-value"),
        pytest.param(b"\x00\x01a\x7f", "truncated integer", id="truncated-value-length"),
        pytest.param(b"\x00\x01a\x03xy", "truncated string", id="truncated-value"),
        pytest.param(b"\x00\x7f\xff\xff\xff\xff\x7f", "too large", id="huge-string-length"),
        pytest.param(b"\xff" + b"\xff" * 5 + b"\x01", "too large", id="huge-index"),
        pytest.param(b"\x3f" + b"\xff" * 5 + b"\x01", "too large", id="huge-size-update"),
        pytest.param(b"\xff" + b"\x80" * 400 + b"\x01", "too large", id="huge-index-zero-padded"),
        pytest.param(b"\x00\x81\xff\x00", "Huffman", id="huffman-eos-padding"),
    ],
)
def test_invalid_blocks(block: bytes, message: str) -> None:
    with pytest.raises(HpackError, match=message):
        HpackDecoder().decode(block)


def test_size_update_up_to_the_advertised_limit() -> None:
    decoder = HpackDecoder(max_table_size=100)
    assert decoder.decode(encode_integer(100, 5, 0x20)) == ([], True)
    with pytest.raises(HpackError, match="above the advertised 100"):
        decoder.decode(encode_integer(101, 5, 0x20))
    # A table shrunk to 0 then restored: two updates at the block's start are allowed.
    assert decoder.decode(encode_integer(0, 5, 0x20) + encode_integer(100, 5, 0x20) + b"\x82") == (
        [(":method", "GET")],
        True,
    )


def test_server_literals_decode_with_the_reference_decoder() -> None:
    block = encode_literal("grpc-status", "0") + encode_literal("grpc-message", "caf\xe9 %")
    assert hpack.Decoder().decode(block, raw=True) == [(b"grpc-status", b"0"), (b"grpc-message", b"caf\xe9 %")]
    assert HpackDecoder().decode(block) == ([("grpc-status", "0"), ("grpc-message", "caf\xe9 %")], True)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 8), st.integers(0, 255))
def test_integers_match_the_reference_codec(value: int, prefix_bits: int, flags: int) -> None:
    flags &= ~((1 << prefix_bits) - 1) & 0xFF  # only the bits above the prefix
    raw = encode_integer(value, prefix_bits, flags)
    reference = hpack.hpack.encode_integer(value, prefix_bits)
    reference[0] |= flags
    assert raw == bytes(reference)
    assert hpack.hpack.decode_integer(raw, prefix_bits) == (value, len(raw))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 + 2**20))
def test_the_decoder_reads_integers_up_to_2_to_the_32(value: int) -> None:
    """Through a table size update (5-bit prefix) to a decoder that allows any size."""
    decoder = HpackDecoder(max_table_size=2**40)
    block = encode_integer(value, 5, 0x20)
    if value <= 2**32:
        assert decoder.decode(block) == ([], True)
    else:
        with pytest.raises(HpackError, match="too large"):
            decoder.decode(block)


# -------------------------------------------------------------------------------------- block cache
def test_a_repeated_all_indexed_block_decodes_the_same() -> None:
    decoder = HpackDecoder()
    block = b"\x83\x86\x84"  # :method POST, :scheme http, :path /
    expected = [(":method", "POST"), (":scheme", "http"), (":path", "/")]
    for _ in range(3):
        assert decoder.decode(block) == (expected, True)


def test_the_block_cache_follows_the_table() -> None:
    encoder = hpack.Encoder()
    decoder = HpackDecoder()
    decoder.decode(encode(encoder, [("x-a", "1", False)], False))
    indexed = b"\xbe"  # dynamic index 62: the newest entry
    assert decoder.decode(indexed) == ([("x-a", "1")], True)
    assert decoder.decode(indexed) == ([("x-a", "1")], True)  # from the cache
    decoder.decode(encode(encoder, [("x-b", "2", False)], False))
    assert decoder.decode(indexed) == ([("x-b", "2")], True)  # same bytes, new table
    assert decoder.decode(b"\xbf") == ([("x-a", "1")], True)
    # A size update to 0 empties the table: the cached answers for these bytes are gone too.
    assert decoder.decode(b"\x20") == ([], True)
    with pytest.raises(HpackError, match="beyond"):
        decoder.decode(indexed)
    # A literal without indexing changes nothing: such a block is cached and repeats.
    plain = encode_literal("x-c", "3") + b"\x83"
    for _ in range(2):
        assert decoder.decode(plain) == ([("x-c", "3"), (":method", "POST")], True)


def test_the_block_cache_stays_bounded_and_correct() -> None:
    decoder = HpackDecoder()
    blocks = [encode_literal("x-n", str(i)) for i in range(200)]
    for _ in range(2):
        for i, block in enumerate(blocks):
            assert decoder.decode(block) == ([("x-n", str(i))], True)
