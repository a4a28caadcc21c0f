"""The client half of ``host.net``: one TCP connection, concurrent calls multiplexed by request id."""
from __future__ import annotations

import asyncio
import itertools
from typing import AsyncIterator, Iterator

from host.net import deadline as dl
from host.net.auth import authenticate, resolve
from host.net.codec import T_CANCEL, T_END, T_ERROR, T_GOAWAY, T_PING, WireFormatError, decode_fields
from host.net.frames import (E_DEADLINE, E_INTERNAL, E_TIMEOUT, E_TOO_LARGE, E_UNAVAILABLE, RemoteError, RpcError,
                             encode_frame, read_header)
from host.net.timeouts import within


class RpcClient:
    """One TCP connection to an RpcServer; concurrent calls are multiplexed by request id.

    ``draining`` turns True when the server announced it is leaving (T_GOAWAY); answers to the requests
    already sent still arrive, ``on_goaway()`` (if set) is called once."""

    def __init__(self, reader, writer, address: str, timeout: float | None, max_frame: int):
        self._reader, self._writer, self.address = reader, writer, address
        self.timeout, self.max_frame = timeout, max_frame
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future | asyncio.Queue] = {}
        self._closed: RpcError | None = None
        self.draining, self.on_goaway = False, None
        self._task = asyncio.create_task(self._read_loop())

    @classmethod
    async def connect(cls, host: str, port: int, *, timeout: float | None = 30.0, connect_timeout: float = 5.0,
                      max_frame: int = 64 << 20, secret: str | bytes | None = None) -> "RpcClient":
        """Connect; with a ``secret`` (or $ANOLE_SECRET) run the challenge-response of ``host.net.auth``."""
        address, secret = f"{host}:{port}", resolve(secret)
        try:
            async with within(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except (OSError, asyncio.TimeoutError) as e:
            raise RpcError(E_UNAVAILABLE, f"cannot connect to {address}: {e or 'timed out'}") from None
        client = cls(reader, writer, address, timeout, max_frame)
        if secret is not None:
            try:
                await authenticate(lambda t, f: client.call(t, f, timeout=connect_timeout), secret, address)
            except BaseException:
                await client.close()
                raise
        return client

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def closed_why(self) -> str | None:
        """Why the connection ended (None while open)."""
        return None if self._closed is None else self._closed.message

    async def call(self, msg_type: int, fields: dict | None = None, *, timeout: float | None = None,
                   deadline: float | None = None) -> dict:
        """Send one request and wait for its response field map.

        ``deadline`` (event-loop clock, ``host.net.deadline``) travels with the request as ``deadline_s``;
        past it the call fails with E_DEADLINE, past ``timeout`` with E_TIMEOUT."""
        wait = timeout or self.timeout
        if deadline is not None:
            left = dl.remaining(deadline, self.address)
            fields = {**(fields or {}), dl.FIELD: left}
            by_deadline = wait is None or left < wait
            wait = left if by_deadline else wait
        fut = asyncio.get_running_loop().create_future()
        rid = await self._send(msg_type, fields, fut)
        try:
            async with within(wait):
                return await fut
        except asyncio.TimeoutError:
            self._cancel(rid)
            if deadline is not None and by_deadline:
                raise RpcError(E_DEADLINE, f"{self.address}: no answer before the deadline") from None
            raise RpcError(E_TIMEOUT, f"{self.address}: no answer within {wait} s") from None
        except asyncio.CancelledError:
            self._cancel(rid)
            raise
        finally:
            self._pending.pop(rid, None)

    async def ping(self, timeout: float) -> None:
        """One T_PING round trip; RpcError if none within ``timeout`` s."""
        await self.call(T_PING, {}, timeout=timeout)

    async def stream(self, msg_type: int, fields: dict | None = None, *,
                     timeout: float | None = None) -> AsyncIterator[dict]:
        """Send one request and yield the items of its streamed response; ``timeout`` bounds each wait.

        Leaving the loop early (break, error, timeout) sends T_CANCEL so the server stops the stream."""
        queue: asyncio.Queue = asyncio.Queue()
        rid = await self._send(msg_type, fields, queue)
        done = False
        try:
            while True:
                try:
                    async with within(timeout or self.timeout):
                        item = await queue.get()
                except asyncio.TimeoutError:
                    raise RpcError(E_TIMEOUT, f"{self.address}: stream stalled for {timeout or self.timeout} s") from None
                if isinstance(item, Exception):
                    done = True
                    raise item
                if item is None:
                    done = True
                    return
                yield item
        finally:
            if not done:
                self._cancel(rid)
            self._pending.pop(rid, None)

    async def _send(self, msg_type: int, fields: dict | None, slot) -> int:
        if self._closed:
            raise self._closed
        rid = next(self._ids)
        frame = encode_frame(msg_type, 0, rid, fields or {})
        self._pending[rid] = slot
        self._writer.write(frame)
        try:
            await self._writer.drain()
        except ConnectionError as e:
            self._pending.pop(rid, None)
            raise RpcError(E_UNAVAILABLE, f"connection to {self.address} lost: {e}") from None
        return rid

    def _cancel(self, rid: int) -> None:
        if not self._closed and not self._writer.is_closing():
            self._writer.write(encode_frame(T_CANCEL, 0, rid, {}))

    async def _read_loop(self) -> None:
        why = RpcError(E_UNAVAILABLE, f"{self.address} closed the connection")
        try:
            while (head := await read_header(self._reader, None, self.timeout)) is not None:
                _, msg_type, flags, rid, length = head
                if length > self.max_frame:
                    why = RpcError(E_TOO_LARGE, f"{self.address} sent a frame of {length} bytes")
                    break
                async with within(self.timeout):
                    fields = decode_fields(await self._reader.readexactly(length))
                if msg_type == T_GOAWAY:
                    self._goaway()
                    continue
                self._deliver(self._pending.get(rid), msg_type, fields)
        except (OSError, EOFError, asyncio.TimeoutError, WireFormatError) as e:
            why = RpcError(E_UNAVAILABLE, f"connection to {self.address} lost: {type(e).__name__} {e}")
        finally:
            self._fail_all(why)

    def _goaway(self) -> None:
        if not self.draining:
            self.draining = True
            if self.on_goaway is not None:
                self.on_goaway()

    def _deliver(self, slot, msg_type: int, fields) -> None:
        if msg_type == T_ERROR:
            fields = RemoteError(fields.get("code", E_INTERNAL), f"{self.address}: {fields.get('message', '')}")
        if isinstance(slot, asyncio.Queue):
            slot.put_nowait(None if msg_type == T_END else fields)
        elif slot is not None and not slot.done():
            slot.set_exception(fields) if isinstance(fields, Exception) else slot.set_result(fields)

    def _fail_all(self, why: RpcError) -> None:
        self._closed = why
        for slot in self._pending.values():
            self._deliver(slot, -1, why)
        self._pending.clear()
        self._writer.close()

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class SyncClient:
    """Blocking wrapper of RpcClient with its own event loop (for the CLI and scripts)."""

    def __init__(self, host: str, port: int, **kw):
        self._loop = asyncio.new_event_loop()
        self._client = self._loop.run_until_complete(RpcClient.connect(host, port, **kw))

    def call(self, msg_type: int, fields: dict | None = None, **kw) -> dict:
        return self._loop.run_until_complete(self._client.call(msg_type, fields, **kw))

    def stream(self, msg_type: int, fields: dict | None = None, **kw) -> Iterator[dict]:
        agen = self._client.stream(msg_type, fields, **kw)
        try:
            while True:
                try:
                    yield self._loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run_until_complete(agen.aclose())

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
