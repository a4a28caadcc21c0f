"""The anole wire format (docs/protocol.md): a fixed frame header and a typed field encoding. No pickle.

Frame = 20-byte header ``<4sBBHQI`` (magic b"ANOL", version, msg type, flags, request id, payload length)
followed by the payload.  A payload is a *field map*: ``dict[str, value]`` where a value is None, bool,
int (int64), float (float64), str, bytes, a numpy array (little-endian raw buffer with dtype code and
shape), a list of values or a nested field map.  Decoding is strict and bounded: any malformed input
raises ``WireFormatError``, never anything else.
"""
from __future__ import annotations

import struct

import numpy as np

MAGIC = b"ANOL"
VERSION = 1
HEADER = struct.Struct("<4sBBHQI")
HEADER_SIZE = HEADER.size  # 20

# flags
F_RESPONSE = 0x1  # server -> client
F_STREAM = 0x2    # one item of a streamed response; more follow, then an END frame

# transport message types (0..15 reserved); applications register 16..255
T_ERROR = 1
T_END = 2
T_PING = 3
T_CANCEL = 4  # client -> server: stop working on request_id (no answer)
T_GOAWAY = 5  # server -> client (request id 0): draining; send no new requests, reconnect elsewhere
T_AUTH = 6    # client -> server: shared-secret challenge-response (host.net.auth)
FIRST_USER_TYPE = 16

MAX_DEPTH = 8
MAX_NDIM = 8
MAX_VALUES = 1 << 20  # values (scalars, arrays, lists, maps) in one payload: bounds decoding memory

_DTYPES = {1: "u1", 2: "i1", 3: "<u2", 4: "<i2", 5: "<u4", 6: "<i4", 7: "<u8", 8: "<i8",
           9: "<f2", 10: "<f4", 11: "<f8", 12: "?"}
_DTYPE_CODES = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k for k, v in _DTYPES.items()}

_NONE, _BOOL, _INT, _FLOAT, _STR, _BYTES, _ARRAY, _LIST, _DICT = range(9)
_I64, _F64, _U32, _U16, _U64 = struct.Struct("<q"), struct.Struct("<d"), struct.Struct("<I"), struct.Struct("<H"), struct.Struct("<Q")


class WireFormatError(ValueError):
    """Bytes that are not a valid anole frame or field map."""


def pack_header(msg_type: int, flags: int, request_id: int, length: int) -> bytes:
    return HEADER.pack(MAGIC, VERSION, msg_type, flags, request_id, length)


def unpack_header(buf: bytes) -> tuple[int, int, int, int, int]:
    """-> (version, msg_type, flags, request_id, length); raises WireFormatError on a wrong magic."""
    if len(buf) != HEADER_SIZE:
        raise WireFormatError(f"header must be {HEADER_SIZE} bytes, not {len(buf)}")
    magic, version, msg_type, flags, request_id, length = HEADER.unpack(buf)
    if magic != MAGIC:
        raise WireFormatError(f"bad magic {magic!r}, expected {MAGIC!r}")
    return version, msg_type, flags, request_id, length


def encode_fields(fields: dict) -> bytes:
    """Field map -> payload bytes. Raises TypeError/ValueError for values the format cannot carry."""
    out: list[bytes] = []
    try:
        _enc_map(fields, out, [0], 0)
    except struct.error as e:
        raise ValueError(f"value out of range for the wire format: {e}") from None
    return b"".join(out)


def decode_fields(payload: bytes | memoryview) -> dict:
    """Payload bytes -> field map. Arrays are read-only zero-copy views of ``payload``."""
    buf = payload if isinstance(payload, bytes) else bytes(payload)
    try:
        fields, pos = _dec_map(buf, 0, 0, [MAX_VALUES])
    except (struct.error, UnicodeDecodeError, ValueError, OverflowError) as e:
        if isinstance(e, WireFormatError):
            raise
        raise WireFormatError(f"malformed payload: {e}") from None
    if pos != len(buf):
        raise WireFormatError(f"{len(buf) - pos} trailing bytes after the field map")
    return fields


def _put(out: list, pos: list, b: bytes) -> None:
    out.append(b)
    pos[0] += len(b)


def _enc_map(fields: dict, out: list, pos: list, depth: int) -> None:
    if not isinstance(fields, dict):
        raise TypeError(f"a field map must be a dict, not {type(fields).__name__}")
    if depth > MAX_DEPTH or len(fields) > 0xFFFF:
        raise ValueError("field map too deep or too many fields")
    _put(out, pos, _U16.pack(len(fields)))
    for name, value in fields.items():
        raw = name.encode() if isinstance(name, str) else None
        if raw is None or len(raw) > 255:
            raise ValueError(f"field names must be str of <= 255 utf-8 bytes, not {name!r}")
        _put(out, pos, bytes([len(raw)]) + raw)
        _enc_value(value, out, pos, depth)


def _enc_value(v, out: list, pos: list, depth: int) -> None:
    if v is None:
        _put(out, pos, bytes([_NONE]))
    elif isinstance(v, (bool, np.bool_)):
        _put(out, pos, bytes([_BOOL, int(bool(v))]))
    elif isinstance(v, (int, np.integer)):
        _put(out, pos, bytes([_INT]) + _I64.pack(int(v)))
    elif isinstance(v, (float, np.floating)):
        _put(out, pos, bytes([_FLOAT]) + _F64.pack(float(v)))
    elif isinstance(v, str):
        raw = v.encode()
        _put(out, pos, bytes([_STR]) + _U32.pack(len(raw)) + raw)
    elif isinstance(v, (bytes, bytearray, memoryview)):
        raw = bytes(v)
        _put(out, pos, bytes([_BYTES]) + _U32.pack(len(raw)) + raw)
    elif isinstance(v, np.ndarray):
        dt = v.dtype.newbyteorder("<") if v.dtype.itemsize > 1 else v.dtype
        code = _DTYPE_CODES.get(dt)
        if code is None or v.ndim > MAX_NDIM:
            raise TypeError(f"cannot send arrays of dtype {v.dtype} with ndim {v.ndim}")
        head = bytes([_ARRAY, code, v.ndim]) + b"".join(_U64.pack(n) for n in v.shape)
        _put(out, pos, head + bytes(-(pos[0] + len(head)) % 8))  # data starts 8-aligned in the payload
        _put(out, pos, np.ascontiguousarray(v, dtype=dt).tobytes())
    elif isinstance(v, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise ValueError("value nested too deep")
        _put(out, pos, bytes([_LIST]) + _U32.pack(len(v)))
        for item in v:
            _enc_value(item, out, pos, depth + 1)
    elif isinstance(v, dict):
        _put(out, pos, bytes([_DICT]))
        _enc_map(v, out, pos, depth + 1)
    else:
        raise TypeError(f"cannot send a value of type {type(v).__name__}")


def _need(buf: bytes, pos: int, n: int) -> None:
    if n < 0 or pos + n > len(buf):
        raise WireFormatError(f"truncated: need {n} bytes at offset {pos}, have {len(buf) - pos}")


def _dec_map(buf: bytes, pos: int, depth: int, budget: list) -> tuple[dict, int]:
    if depth > MAX_DEPTH:
        raise WireFormatError("field map nested too deep")
    _need(buf, pos, 2)
    (count,), pos = _U16.unpack_from(buf, pos), pos + 2
    fields = {}
    for _ in range(count):
        _need(buf, pos, 1)
        n = buf[pos]
        _need(buf, pos + 1, n)
        name, pos = buf[pos + 1: pos + 1 + n].decode(), pos + 1 + n
        if name in fields:
            raise WireFormatError(f"duplicate field {name!r}")
        fields[name], pos = _dec_value(buf, pos, depth, budget)
    return fields, pos


def _dec_value(buf: bytes, pos: int, depth: int, budget: list):
    budget[0] -= 1
    if budget[0] < 0:
        raise WireFormatError(f"more than {MAX_VALUES} values in one payload")
    _need(buf, pos, 1)
    tag, pos = buf[pos], pos + 1
    if tag == _NONE:
        return None, pos
    if tag == _BOOL:
        _need(buf, pos, 1)
        if buf[pos] > 1:
            raise WireFormatError(f"bool byte {buf[pos]}")
        return bool(buf[pos]), pos + 1
    if tag in (_INT, _FLOAT):
        _need(buf, pos, 8)
        return (_I64 if tag == _INT else _F64).unpack_from(buf, pos)[0], pos + 8
    if tag in (_STR, _BYTES):
        _need(buf, pos, 4)
        (n,), pos = _U32.unpack_from(buf, pos), pos + 4
        _need(buf, pos, n)
        raw = buf[pos: pos + n]
        return (raw.decode() if tag == _STR else raw), pos + n
    if tag == _ARRAY:
        _need(buf, pos, 2)
        code, ndim, pos = buf[pos], buf[pos + 1], pos + 2
        if code not in _DTYPES or ndim > MAX_NDIM:
            raise WireFormatError(f"bad array dtype code {code} or ndim {ndim}")
        _need(buf, pos, 8 * ndim)
        shape = tuple(_U64.unpack_from(buf, pos + 8 * i)[0] for i in range(ndim))
        pos += 8 * ndim + (-(pos + 8 * ndim) % 8)
        dt = np.dtype(_DTYPES[code])
        count = 1
        for n in shape:
            count *= n
        _need(buf, pos, count * dt.itemsize)
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=pos) if count else np.empty(0, dt)
        arr = arr.reshape(shape)
        return arr, pos + count * dt.itemsize
    if tag == _LIST:
        if depth >= MAX_DEPTH:
            raise WireFormatError("list nested too deep")
        _need(buf, pos, 4)
        (n,), pos = _U32.unpack_from(buf, pos), pos + 4
        _need(buf, pos, n)  # every item takes at least one byte
        items = []
        for _ in range(n):
            item, pos = _dec_value(buf, pos, depth + 1, budget)
            items.append(item)
        return items, pos
    if tag == _DICT:
        return _dec_map(buf, pos, depth + 1, budget)
    raise WireFormatError(f"unknown value tag {tag}")
