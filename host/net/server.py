"""The server half of ``host.net``: ``RpcServer`` serves registered message types to many connections;
each connection is a ``Connection`` that reads frames and dispatches requests as concurrent tasks."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from host.net import deadline
from host.net.auth import ServerAuth, resolve, warn_if_exposed
from host.net.codec import (F_RESPONSE, F_STREAM, T_AUTH, T_CANCEL, T_END, T_ERROR, T_GOAWAY, T_PING, VERSION,
                            WireFormatError, decode_fields)
from host.net.frames import (E_AUTH, E_BAD_FRAME, E_BAD_PAYLOAD, E_BAD_REQUEST, E_BUSY, E_DEADLINE, E_INTERNAL,
                             E_TOO_LARGE, E_UNAVAILABLE, E_UNKNOWN_TYPE, E_VERSION, RpcError, encode_frame,
                             read_header)
from host.net.lifecycle import serve_node  # noqa: F401 - its former home; callers may import it from here
from host.net.timeouts import within, within_at
from host.spec.errors import AnoleError

log = logging.getLogger(__name__)


class RpcServer:
    """Serves registered message types to many concurrent TCP connections.

    ``max_connections`` caps open connections (one more gets an E_BUSY frame and is closed); ``idle_timeout``
    closes a connection silent that long between frames; ``secret`` (or $ANOLE_SECRET) requires the
    challenge-response of ``host.net.auth`` before anything else.  ``drain`` stops accepting, tells every
    peer (T_GOAWAY) and waits for the requests in flight."""

    def __init__(self, *, max_frame: int = 64 << 20, read_timeout: float | None = 30.0,
                 idle_timeout: float | None = None, max_inflight: int = 64, max_connections: int | None = None,
                 secret: str | bytes | None = None):
        self.max_frame, self.read_timeout, self.idle_timeout = max_frame, read_timeout, idle_timeout
        self.max_inflight, self.max_connections = max_inflight, max_connections
        self.secret = resolve(secret)
        self.draining = False
        self._handlers: dict[int, tuple] = {}
        self._server: asyncio.base_events.Server | None = None
        self._conns: dict[asyncio.Task, "Connection"] = {}

    def register(self, msg_type: int, handler, *, stream: bool = False) -> None:
        if not 16 <= msg_type <= 255:
            raise ValueError(f"user message types are 16..255, not {msg_type}")
        self._handlers[msg_type] = (handler, stream)

    async def start(self, host: str = "127.0.0.1", port: int = 0, sock=None) -> tuple[str, int]:
        """Listen on host:port, or on ``sock`` (already bound and listening) when given."""
        if sock is not None:
            self._server = await asyncio.start_server(self._serve_conn, sock=sock, limit=1 << 20)
        else:
            self._server = await asyncio.start_server(self._serve_conn, host, port, limit=1 << 20)
        self.address = self._server.sockets[0].getsockname()[:2]
        log.info("listening on %s:%d%s", *self.address, " (shared secret required)" if self.secret else "")
        warn_if_exposed(self.address[0], self.secret, "the server")
        return self.address

    async def serve_forever(self) -> None:
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for t in list(self._conns):
                t.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)

    async def drain(self, timeout: float) -> int:
        """Stop accepting, send T_GOAWAY to every peer, wait up to ``timeout`` s for the requests in flight;
        -> how many were still running (the caller then closes)."""
        self.draining = True
        if self._server is not None:
            self._server.close()
        conns = list(self._conns.values())
        for c in conns:
            c.goaway()
        tasks = [t for c in conns for t in c.tasks.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return sum(not t.done() for t in tasks)

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self, reader, writer)
        if self.max_connections is not None and len(self._conns) >= self.max_connections:
            log.warning("refusing a connection: %d open (the limit)", len(self._conns))
            with contextlib.suppress(ConnectionError):
                await conn.error(0, E_BUSY, f"the server has {len(self._conns)} connections open (its limit)")
            writer.close()
            return
        self._conns[asyncio.current_task()] = conn
        try:
            await conn.serve()
        finally:
            self._conns.pop(asyncio.current_task(), None)


class RpcNode:
    """A server whose transport is ``self.server`` (an RpcServer): start, serve_forever, drain and close go
    to it (what ``serve_node`` drives); subclasses extend close with their own clean-up."""

    server: RpcServer

    async def start(self, host: str = "127.0.0.1", port: int = 0, sock=None) -> tuple[str, int]:
        return await self.server.start(host, port, sock=sock)

    async def serve_forever(self) -> None:
        await self.server.serve_forever()

    async def drain(self, timeout: float) -> int:
        """Stop accepting, tell the clients (T_GOAWAY), finish the requests in flight (at most ``timeout`` s)."""
        return await self.server.drain(timeout)

    async def close(self) -> None:
        await self.server.close()


class Connection:
    """One peer: reads frames until EOF or an unrecoverable framing error, runs each request as a task
    (at most ``max_inflight`` at once) and writes its answer frames."""

    def __init__(self, server: RpcServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server, self.handlers, self.reader, self.writer = server, server._handlers, reader, writer
        self.max_frame, self.read_timeout = server.max_frame, server.read_timeout
        self.idle_timeout = server.idle_timeout
        self.tasks: dict[int, asyncio.Task] = {}   # by request id
        self.slots = asyncio.Semaphore(server.max_inflight)
        self.auth = ServerAuth(server.secret)

    def goaway(self) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_frame(T_GOAWAY, F_RESPONSE, 0, {}))

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
        if msg_type == T_AUTH or not self.auth.done:
            await self.authenticate(msg_type, rid, payload)
        elif msg_type == T_PING:
            await self.send(T_PING, F_RESPONSE, rid, {})
        elif msg_type == T_CANCEL:
            if rid in self.tasks:
                self.tasks[rid].cancel()
        elif flags & F_RESPONSE or msg_type not in self.handlers:
            await self.error(rid, E_UNKNOWN_TYPE, f"no handler for message type {msg_type} (flags {flags:#x})")
        elif rid in self.tasks:
            await self.error(rid, E_BAD_FRAME, f"request id {rid} is already in flight on this connection")
        elif self.server.draining:
            await self.error(rid, E_UNAVAILABLE, "the server is draining (shutting down); send it elsewhere")
        else:
            await self.slots.acquire()
            self.tasks[rid] = task = asyncio.create_task(self.run(msg_type, rid, payload))
            task.add_done_callback(lambda t, rid=rid: (self.tasks.pop(rid, None), self.slots.release()))

    async def authenticate(self, msg_type: int, rid: int, payload: bytes) -> None:
        """Before the secret is proven only T_AUTH is served; a wrong proof closes the connection."""
        try:
            if msg_type != T_AUTH:
                raise RpcError(E_AUTH, "this server requires a shared secret (host.net.auth): authenticate first")
            await self.send(T_AUTH, F_RESPONSE, rid, self.auth.handle(decode_fields(payload)))
        except (RpcError, WireFormatError) as e:
            await self.error(rid, E_AUTH, getattr(e, "message", str(e)))
            if self.server.secret is not None:
                log.warning("authentication failed for a peer: %s", e)
                self.writer.close()

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
            deadline.set_current(due := deadline.take(fields))
            async with within_at(due):
                await self.answer(msg_type, rid, handler, stream, fields)
        except asyncio.TimeoutError:
            await self.error(rid, E_DEADLINE, "the request's deadline passed; its work was dropped")
        except RpcError as e:
            await self.error(rid, e.code, e.message)

    async def answer(self, msg_type: int, rid: int, handler, stream: bool, fields: dict) -> None:
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
