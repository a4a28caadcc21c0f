"""host.net.codec: the field-map encoding round-trips (hypothesis) and the decoder fails only cleanly."""
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from host.net import codec

_DT = st.sampled_from(["u1", "i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4", "<f8", "?", ">f4", ">i8"])
_arrays = _DT.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
_scalars = (st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1)
            | st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20) | _arrays)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_maps = st.dictionaries(st.text(max_size=12), _values, max_size=6)


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype.kind == b.dtype.kind
                and a.dtype.itemsize == b.dtype.itemsize and b.dtype.byteorder in "<|="
                and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (list, tuple)):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=150, deadline=None)
@given(_maps)
def test_codec_round_trip(fields):
    assert _same(fields, codec.decode_fields(codec.encode_fields(fields)))


@settings(max_examples=150, deadline=None)
@given(_maps, st.data())
def test_decoder_rejects_corruption_cleanly(fields, data):
    raw = bytearray(codec.encode_fields(fields))
    if raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        codec.decode_fields(bytes(raw))
    except codec.WireFormatError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_random_bytes(raw):
    try:
        codec.decode_fields(raw)
    except codec.WireFormatError:
        pass


def test_header_layout():
    h = codec.pack_header(17, codec.F_RESPONSE, 0x0102030405060708, 99)
    assert h == b"ANOL" + bytes([1, 17]) + b"\x01\x00" + bytes(range(8, 0, -1)) + struct.pack("<I", 99)
    assert codec.unpack_header(h) == (1, 17, 1, 0x0102030405060708, 99)
    with pytest.raises(codec.WireFormatError):
        codec.unpack_header(b"XNOL" + h[4:])


def test_unsendable_values():
    for bad in ({"x": object()}, {"x": np.zeros(2, complex)}, {"x" * 300: 1}, {"x": 1 << 70}, {1: 2}):
        with pytest.raises((TypeError, ValueError)):
            codec.encode_fields(bad)


def test_decoder_bounds_the_number_of_values():
    ok = codec.encode_fields({"l": [None] * 1000})
    assert codec.decode_fields(ok)["l"] == [None] * 1000
    big = codec.encode_fields({"l": [[None] * 60_000] * 20})  # 1.2 M values in 1.2 MB
    with pytest.raises(codec.WireFormatError, match="values in one payload"):
        codec.decode_fields(big)
