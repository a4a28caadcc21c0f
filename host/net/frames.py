"""One frame on the wire: the RPC error codes and errors, addresses, and reading and writing a frame."""
from __future__ import annotations

import asyncio

from host.net.codec import HEADER_SIZE, encode_fields, pack_header, unpack_header
from host.net.timeouts import within
from host.spec.errors import AnoleError

E_BAD_FRAME, E_VERSION, E_TOO_LARGE, E_BAD_PAYLOAD, E_UNKNOWN_TYPE = 1, 2, 3, 4, 5
E_BAD_REQUEST, E_INTERNAL, E_TIMEOUT, E_UNAVAILABLE = 6, 7, 8, 9
E_DEADLINE, E_BUSY, E_AUTH = 10, 11, 12


class RpcError(AnoleError):
    """An RPC failed: ``code`` is one of the E_* codes, ``message`` says why."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class RemoteError(RpcError):
    """The peer answered with an error frame."""


def parse_address(addr: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise AnoleError(f"bad address {addr!r}; expected HOST:PORT")
    return host.strip("[]"), int(port)


def encode_frame(msg_type: int, flags: int, rid: int, fields: dict) -> bytes:
    payload = encode_fields(fields)
    return pack_header(msg_type, flags, rid, len(payload)) + payload


async def read_header(reader: asyncio.StreamReader, idle: float | None, timeout: float | None):
    """-> (version, msg_type, flags, request_id, length), or None at a clean EOF.

    Waits ``idle`` for the first byte, then ``timeout`` for the rest of the header."""
    async with within(idle):
        first = await reader.read(1)
    if not first:
        return None
    async with within(timeout):
        raw = first + await reader.readexactly(HEADER_SIZE - 1)
    return unpack_header(raw)
