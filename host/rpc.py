"""Generic request/response and streaming RPC over asyncio TCP, on the frames of ``host.rpc_codec``.

Transport only: message types and their meaning belong to the user (``host.wire`` for retrieval,
``llm_node`` for tokens).  Byte-level spec: docs/protocol.md.

Server::

    server = RpcServer(max_frame=64 << 20, read_timeout=30.0)
    server.register(16, handler)                 # async def handler(fields: dict) -> dict
    server.register(17, gen_handler, stream=True) # async generator: yields dicts, one frame each, then END
    host, port = await server.start("127.0.0.1", 0)
    await server.serve_forever()                 # or: await server.close()

A handler receives the request's field map (arrays are read-only views) and returns the response field
map.  Raising ``RpcError(code, msg)`` sends that error frame; ``AnoleError``, ``ValueError``,
``TypeError`` or ``KeyError`` send ``E_BAD_REQUEST`` (bad input); anything else ``E_INTERNAL``.  A
stream handler that raises mid-stream ends the stream with the error frame; when the peer is gone,
its next ``yield`` is not resumed (the generator is closed).  A T_CANCEL frame (the client's stream
or call gave up) cancels the handler of its request id.  Requests run as concurrent tasks, so one connection
multiplexes many requests by request id (at most ``max_inflight`` each); responses may come back in any
order.  Malformed frames get an error frame; the connection closes only when the byte stream cannot be
resynchronised (bad magic, bad version, truncated frame, read timeout).

Client (async; one connection, many concurrent calls)::

    client = await RpcClient.connect("127.0.0.1", port, timeout=30.0)
    reply = await client.call(16, {"x": np.arange(4)})     # dict, or raises RemoteError / RpcError
    async for item in client.stream(17, {...}): ...        # items until the END frame
    await client.close()

``SyncClient`` wraps the same API for scripts and the CLI (its own event loop, not thread-safe).
Both live in ``host.rpc_client`` and are importable from here.
"""
from __future__ import annotations

import asyncio
import logging

from host.errors import AnoleError
from host.rpc_codec import (F_RESPONSE, F_STREAM, HEADER_SIZE, T_CANCEL, T_END, T_ERROR, T_PING, VERSION,
                            WireFormatError, decode_fields, encode_fields, pack_header, unpack_header)

log = logging.getLogger(__name__)

E_BAD_FRAME, E_VERSION, E_TOO_LARGE, E_BAD_PAYLOAD, E_UNKNOWN_TYPE = 1, 2, 3, 4, 5
E_BAD_REQUEST, E_INTERNAL, E_TIMEOUT, E_UNAVAILABLE = 6, 7, 8, 9


class RpcError(AnoleError):
    """An RPC failed: ``code`` is one of the E_* codes, ``message`` says why."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class RemoteError(RpcError):
    """The peer answered with an error frame."""


async def serve_node(node, host: str, port: int, on_ready=None) -> None:
    """Start ``node`` (anything with async start/serve_forever/close), call ``on_ready(host, port)`` once it
    listens, serve until cancelled, then close it."""
    try:
        addr = await node.start(host, port)
        if on_ready:
            on_ready(*addr)
        await node.serve_forever()
    finally:
        await node.close()


def parse_address(addr: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise AnoleError(f"bad address {addr!r}; expected HOST:PORT")
    return host.strip("[]"), int(port)


def _frame(msg_type: int, flags: int, rid: int, fields: dict) -> bytes:
    payload = encode_fields(fields)
    return pack_header(msg_type, flags, rid, len(payload)) + payload


async def _read_frame(reader: asyncio.StreamReader, idle: float | None, timeout: float | None):
    """-> (version, msg_type, flags, request_id, length), or None at a clean EOF.

    Waits ``idle`` for the first byte, then ``timeout`` for the rest of the header."""
    async with asyncio.timeout(idle):
        first = await reader.read(1)
    if not first:
        return None
    async with asyncio.timeout(timeout):
        raw = first + await reader.readexactly(HEADER_SIZE - 1)
    return unpack_header(raw)


class RpcServer:
    """Serves registered message types to many concurrent TCP connections."""

    def __init__(self, *, max_frame: int = 64 << 20, read_timeout: float | None = 30.0,
                 idle_timeout: float | None = None, max_inflight: int = 64):
        self.max_frame, self.read_timeout, self.idle_timeout = max_frame, read_timeout, idle_timeout
        self.max_inflight = max_inflight
        self._handlers: dict[int, tuple] = {}
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()

    def register(self, msg_type: int, handler, *, stream: bool = False) -> None:
        if not 16 <= msg_type <= 255:
            raise ValueError(f"user message types are 16..255, not {msg_type}")
        self._handlers[msg_type] = (handler, stream)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve_conn, host, port, limit=1 << 20)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("listening on %s:%d", *self.address)
        return self.address

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._conns):
                t.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(asyncio.current_task())
        tasks: dict[int, asyncio.Task] = {}  # by request id
        slots = asyncio.Semaphore(self.max_inflight)

        async def send(msg_type, flags, rid, fields):  # ConnectionError once the peer is gone
            if writer.is_closing():
                raise ConnectionResetError("peer gone")
            try:
                frame = _frame(msg_type, flags, rid, fields)
            except (TypeError, ValueError) as e:
                raise RpcError(E_INTERNAL, f"the handler's answer cannot be encoded: {e}") from None
            writer.write(frame)
            await writer.drain()

        async def error(rid, code, msg):
            await send(T_ERROR, F_RESPONSE, rid, {"code": code, "message": msg})

        try:
            while True:
                try:
                    head = await _read_frame(reader, self.idle_timeout, self.read_timeout)
                except WireFormatError as e:
                    return await error(0, E_BAD_FRAME, str(e))
                if head is None:  # clean EOF (or half-close): finish what was asked, then close
                    await asyncio.gather(*tasks.values(), return_exceptions=True)
                    return
                version, msg_type, flags, rid, length = head
                if version != VERSION:
                    return await error(rid, E_VERSION, f"protocol version {version}; this server speaks {VERSION}")
                if length > self.max_frame:
                    await error(rid, E_TOO_LARGE, f"payload of {length} bytes exceeds the limit of {self.max_frame}")
                    async with asyncio.timeout(self.read_timeout):
                        while length:
                            length -= len(await reader.readexactly(min(length, 1 << 20)))
                    continue
                async with asyncio.timeout(self.read_timeout):
                    payload = await reader.readexactly(length)
                if msg_type == T_PING:
                    await send(T_PING, F_RESPONSE, rid, {})
                elif msg_type == T_CANCEL:
                    if rid in tasks:
                        tasks[rid].cancel()
                elif flags & F_RESPONSE or msg_type not in self._handlers:
                    await error(rid, E_UNKNOWN_TYPE, f"no handler for message type {msg_type} (flags {flags:#x})")
                elif rid in tasks:
                    await error(rid, E_BAD_FRAME, f"request id {rid} is already in flight on this connection")
                else:
                    await slots.acquire()
                    tasks[rid] = task = asyncio.create_task(self._run(send, error, msg_type, rid, payload))
                    task.add_done_callback(lambda t, rid=rid: (tasks.pop(rid, None), slots.release()))
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, asyncio.CancelledError) as e:
            log.debug("connection closed: %r", e)  # CancelledError: server shutting down
        finally:
            for t in tasks.values():
                t.cancel()
            writer.close()
            self._conns.discard(asyncio.current_task())

    async def _run(self, send, error, msg_type: int, rid: int, payload: bytes) -> None:
        try:
            await self._call(send, error, msg_type, rid, payload)
        except ConnectionError:
            log.debug("peer left before the answer to request %d", rid)

    async def _call(self, send, error, msg_type: int, rid: int, payload: bytes) -> None:
        handler, stream = self._handlers[msg_type]
        try:
            fields = decode_fields(payload)
        except WireFormatError as e:
            return await error(rid, E_BAD_PAYLOAD, str(e))
        try:
            if stream:
                async for item in handler(fields):
                    await send(msg_type, F_RESPONSE | F_STREAM, rid, item)
                await send(T_END, F_RESPONSE, rid, {})
            else:
                await send(msg_type, F_RESPONSE, rid, await handler(fields) or {})
        except ConnectionError:
            raise
        except RpcError as e:
            await error(rid, e.code, e.message)
        except (AnoleError, ValueError, TypeError, KeyError) as e:
            await error(rid, E_BAD_REQUEST, str(e) or type(e).__name__)
        except Exception as e:  # noqa: BLE001 - the server must survive any handler failure
            log.exception("handler for message type %d failed", msg_type)
            await error(rid, E_INTERNAL, f"{type(e).__name__}: {e}")


def __getattr__(name: str):
    """The client half lives in host.rpc_client; ``from host.rpc import RpcClient, SyncClient`` works too."""
    if name in ("RpcClient", "SyncClient"):
        from host import rpc_client
        return getattr(rpc_client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
