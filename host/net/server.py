"""The server half of ``host.net``: ``RpcServer`` serves registered message types to many connections;
each connection is a ``Connection`` that reads frames and dispatches requests as concurrent tasks."""
from __future__ import annotations

import asyncio
import logging

from host.net.codec import (F_RESPONSE, F_STREAM, T_CANCEL, T_END, T_ERROR, T_PING, VERSION, WireFormatError,
                            decode_fields)
from host.net.frames import (E_BAD_FRAME, E_BAD_PAYLOAD, E_BAD_REQUEST, E_INTERNAL, E_TOO_LARGE, E_UNKNOWN_TYPE,
                             E_VERSION, RpcError, encode_frame, read_header)
from host.net.timeouts import within
from host.spec.errors import AnoleError

log = logging.getLogger(__name__)


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
        try:
            await Connection(self._handlers, reader, writer, max_frame=self.max_frame,
                             read_timeout=self.read_timeout, idle_timeout=self.idle_timeout,
                             max_inflight=self.max_inflight).serve()
        finally:
            self._conns.discard(asyncio.current_task())


class Connection:
    """One peer: reads frames until EOF or an unrecoverable framing error, runs each request as a task
    (at most ``max_inflight`` at once) and writes its answer frames."""

    def __init__(self, handlers: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_frame: int, read_timeout: float | None, idle_timeout: float | None, max_inflight: int):
        self.handlers, self.reader, self.writer = handlers, reader, writer
        self.max_frame, self.read_timeout, self.idle_timeout = max_frame, read_timeout, idle_timeout
        self.tasks: dict[int, asyncio.Task] = {}   # by request id
        self.slots = asyncio.Semaphore(max_inflight)

    async def serve(self) -> None:
        try:
            while await self.handle_next_frame():
                pass
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, asyncio.CancelledError) as e:
            log.debug("connection closed: %r", e)  # CancelledError: server shutting down
        finally:
            for t in self.tasks.values():
                t.cancel()
            self.writer.close()

    async def handle_next_frame(self) -> bool:
        """Read one frame and act on it; False when the connection ends."""
        try:
            head = await read_header(self.reader, self.idle_timeout, self.read_timeout)
        except WireFormatError as e:
            await self.error(0, E_BAD_FRAME, str(e))
            return False
        if head is None:  # clean EOF (or half-close): finish what was asked, then close
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            return False
        version, msg_type, flags, rid, length = head
        if version != VERSION:
            await self.error(rid, E_VERSION, f"protocol version {version}; this server speaks {VERSION}")
            return False
        if length > self.max_frame:
            await self.error(rid, E_TOO_LARGE, f"payload of {length} bytes exceeds the limit of {self.max_frame}")
            await self.skip(length)
            return True
        async with within(self.read_timeout):
            payload = await self.reader.readexactly(length)
        await self.dispatch(msg_type, flags, rid, payload)
        return True

    async def skip(self, length: int) -> None:
        async with within(self.read_timeout):
            while length:
                length -= len(await self.reader.readexactly(min(length, 1 << 20)))

    async def dispatch(self, msg_type: int, flags: int, rid: int, payload: bytes) -> None:
        if msg_type == T_PING:
            await self.send(T_PING, F_RESPONSE, rid, {})
        elif msg_type == T_CANCEL:
            if rid in self.tasks:
                self.tasks[rid].cancel()
        elif flags & F_RESPONSE or msg_type not in self.handlers:
            await self.error(rid, E_UNKNOWN_TYPE, f"no handler for message type {msg_type} (flags {flags:#x})")
        elif rid in self.tasks:
            await self.error(rid, E_BAD_FRAME, f"request id {rid} is already in flight on this connection")
        else:
            await self.slots.acquire()
            self.tasks[rid] = task = asyncio.create_task(self.run(msg_type, rid, payload))
            task.add_done_callback(lambda t, rid=rid: (self.tasks.pop(rid, None), self.slots.release()))

    async def send(self, msg_type: int, flags: int, rid: int, fields: dict) -> None:
        """Write one frame; ConnectionError once the peer is gone."""
        if self.writer.is_closing():
            raise ConnectionResetError("peer gone")
        try:
            frame = encode_frame(msg_type, flags, rid, fields)
        except (TypeError, ValueError) as e:
            raise RpcError(E_INTERNAL, f"the handler's answer cannot be encoded: {e}") from None
        self.writer.write(frame)
        await self.writer.drain()

    async def error(self, rid: int, code: int, msg: str) -> None:
        await self.send(T_ERROR, F_RESPONSE, rid, {"code": code, "message": msg})

    async def run(self, msg_type: int, rid: int, payload: bytes) -> None:
        try:
            await self.call(msg_type, rid, payload)
        except ConnectionError:
            log.debug("peer left before the answer to request %d", rid)

    async def call(self, msg_type: int, rid: int, payload: bytes) -> None:
        handler, stream = self.handlers[msg_type]
        try:
            fields = decode_fields(payload)
        except WireFormatError as e:
            return await self.error(rid, E_BAD_PAYLOAD, str(e))
        try:
            if stream:
                async for item in handler(fields):
                    await self.send(msg_type, F_RESPONSE | F_STREAM, rid, item)
                await self.send(T_END, F_RESPONSE, rid, {})
            else:
                await self.send(msg_type, F_RESPONSE, rid, await handler(fields) or {})
        except ConnectionError:
            raise
        except RpcError as e:
            await self.error(rid, e.code, e.message)
        except (AnoleError, ValueError, TypeError, KeyError) as e:
            await self.error(rid, E_BAD_REQUEST, str(e) or type(e).__name__)
        except Exception as e:  # noqa: BLE001 - the server must survive any handler failure
            log.exception("handler for message type %d failed", msg_type)
            await self.error(rid, E_INTERNAL, f"{type(e).__name__}: {e}")
