"""host.net: calls, streams, multiplexing, timeouts, many connections, fuzzing the server."""
import asyncio
import socket
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.net import codec
from host.net.client import RpcClient, SyncClient
from host.net.frames import (E_BAD_FRAME, E_BAD_PAYLOAD, E_BAD_REQUEST, E_TIMEOUT, E_TOO_LARGE, E_UNAVAILABLE,
                             E_UNKNOWN_TYPE, E_VERSION, RemoteError, RpcError, parse_address)
from host.net.server import RpcServer

pytestmark = pytest.mark.timeout(60)


def test_parse_address():
    assert parse_address("10.0.0.1:7070") == ("10.0.0.1", 7070)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("nohost", ":80", "h:x", "h:70000"):
        with pytest.raises(Exception, match="bad address"):
            parse_address(bad)


async def _server(endless: bool = True, **kw) -> tuple[RpcServer, int]:
    """Test handlers: 16 echo, 17 sleep, 18 count (stream), 19 bad input, 20 crash, 21 endless stream."""
    s = RpcServer(**kw)

    async def echo(f):
        return f

    async def sleep(f):
        await asyncio.sleep(f["t"])
        return {"t": f["t"]}

    async def count(f):
        for i in range(f["n"]):
            yield {"i": i, "a": np.full(3, i, np.int64)}
        if f.get("fail"):
            raise ValueError("stream broke")

    async def bad(f):
        raise ValueError(f"bad value {f.get('v')}")

    async def crash(f):
        raise RuntimeError("bug")

    async def forever(f):
        try:
            for i in range(10**9):
                await asyncio.sleep(0.001)
                yield {"i": i}
        finally:
            s.stopped.append(f["tag"])

    s.stopped = []
    if endless:
        s.register(21, forever, stream=True)
    s.register(16, echo)
    s.register(17, sleep)
    s.register(18, count, stream=True)
    s.register(19, bad)
    s.register(20, crash)
    _, port = await s.start("127.0.0.1", 0)
    return s, port


def test_call_stream_errors_and_multiplexing():
    async def main():
        s, port = await _server()
        c = await RpcClient.connect("127.0.0.1", port)
        x = np.arange(12, dtype=np.float32).reshape(3, 4)
        r = await c.call(16, {"x": x, "n": 5, "s": "hi", "nested": {"l": [1, None, b"b"]}})
        np.testing.assert_array_equal(r["x"], x)
        assert r["n"] == 5 and r["s"] == "hi" and r["nested"] == {"l": [1, None, b"b"]}
        # one connection, the fast request overtakes the slow one
        slow = asyncio.create_task(c.call(17, {"t": 0.3}))
        assert await c.call(17, {"t": 0.0}) == {"t": 0.0}
        assert not slow.done() and (await slow) == {"t": 0.3}
        items = [i async for i in c.stream(18, {"n": 4})]
        assert [i["i"] for i in items] == [0, 1, 2, 3] and items[3]["a"].tolist() == [3, 3, 3]
        with pytest.raises(RemoteError, match="stream broke"):
            [i async for i in c.stream(18, {"n": 2, "fail": True})]
        for t, code in ((19, E_BAD_REQUEST), (20, 7), (99, E_UNKNOWN_TYPE)):
            with pytest.raises(RemoteError) as e:
                await c.call(t, {"v": 1})
            assert e.value.code == code
        with pytest.raises(RpcError) as e:
            await c.call(17, {"t": 5.0}, timeout=0.05)
        assert e.value.code == E_TIMEOUT
        assert (await c.call(16, {"ok": True})) == {"ok": True}
        async for item in c.stream(21, {"tag": "a"}):        # leaving early cancels the server's stream
            if item["i"] == 3:
                break
        for _ in range(100):
            if s.stopped:
                break
            await asyncio.sleep(0.01)
        assert s.stopped == ["a"]
        await c.close()
        await s.close()
    asyncio.run(main())


def test_sync_client_and_lost_server():
    async def start():
        return await _server()
    loop = asyncio.new_event_loop()
    s, port = loop.run_until_complete(start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    with SyncClient("127.0.0.1", port) as c:
        assert c.call(16, {"a": 1}) == {"a": 1}
        assert [i["i"] for i in c.stream(18, {"n": 3})] == [0, 1, 2]
        asyncio.run_coroutine_threadsafe(s.close(), loop).result()
        with pytest.raises(RpcError) as e:
            c.call(17, {"t": 1.0})
        assert e.value.code == E_UNAVAILABLE
    loop.call_soon_threadsafe(loop.stop)
    t.join()
    with pytest.raises(RpcError, match="cannot connect"):
        SyncClient("127.0.0.1", port, connect_timeout=1.0)


def _exchange(port: int, data: bytes) -> list[tuple]:
    """Send raw bytes, half-close, return the frames the server sent back before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sk:
        def send():
            sk.sendall(data)
            sk.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        buf = b""
        while chunk := sk.recv(1 << 16):
            buf += chunk
        sender.join()
    frames = []
    while len(buf) >= codec.HEADER_SIZE:
        _, t, flags, rid, n = codec.unpack_header(buf[: codec.HEADER_SIZE])
        frames.append((t, rid, codec.decode_fields(buf[codec.HEADER_SIZE: codec.HEADER_SIZE + n])))
        buf = buf[codec.HEADER_SIZE + n:]
    assert not buf
    return frames


def test_garbage_never_kills_the_server():
    """>= 10,000 malformed frames: each gets an error frame or a closed connection; good clients go on."""
    rng = np.random.default_rng(0)

    async def main():
        s, port = await _server(max_frame=4096, read_timeout=2.0)
        good = await RpcClient.connect("127.0.0.1", port)
        head = codec.pack_header
        # (a) valid headers, garbage payloads and unknown types, on one connection: one error frame each
        frames, expect = [], []
        for i in range(9000):
            payload = rng.bytes(int(rng.integers(0, 64)))
            kind = i % 3
            if kind == 0:
                frames.append(head(16, 0, i, len(payload)) + payload)        # garbage field map
                expect.append((i, (E_BAD_PAYLOAD, 16)))                      # (may decode: echo)
            elif kind == 1:
                frames.append(head(int(rng.integers(22, 256)), 0, i, len(payload)) + payload)
                expect.append((i, (E_UNKNOWN_TYPE,)))
            else:
                frames.append(head(19, 0, i, 0) + b"")                       # valid, handler rejects
                expect.append((i, (E_BAD_PAYLOAD, E_BAD_REQUEST)))
        frames.append(head(16, 0, 10**6, 10_000) + bytes(10_000))            # oversized, skipped
        expect.append((10**6, (E_TOO_LARGE,)))
        task = asyncio.get_running_loop().run_in_executor(None, _exchange, port, b"".join(frames))
        for _ in range(20):                                                  # served meanwhile
            assert (await good.call(16, {"x": 1})) == {"x": 1}
        got = {rid: (t, f) for t, rid, f in await task}
        assert len(got) == len(expect)
        for rid, codes in expect:
            t, f = got[rid]
            assert (t == codec.T_ERROR and f["code"] in codes) or (t == 16 and 16 in codes), (rid, t, f)
        # (b) 1,000 stream-breaking inputs, one connection each: error frame then close, or just close
        raws = []
        for i in range(1000):
            payload = rng.bytes(8)
            h = bytearray(head(16, 0, i, len(payload)))
            kind = i % 5
            if kind == 0:
                h[:4] = rng.bytes(4)                                         # wrong magic
            elif kind == 1:
                h[4] = int(rng.integers(2, 256))                             # wrong version
            elif kind == 2:
                raws.append(bytes(h[: int(rng.integers(1, codec.HEADER_SIZE))]))  # truncated header
                continue
            elif kind == 3:
                h[16:20] = struct.pack("<I", 5000)                           # lying length, truncated
            else:
                payload = rng.bytes(int(rng.integers(1, 40)))                # random bytes
                raws.append(payload)
                continue
            raws.append(bytes(h) + payload)
        results = await asyncio.gather(*(asyncio.get_running_loop().run_in_executor(None, _exchange, port, r)
                                         for r in raws))
        for r in results:
            assert len(r) <= 1 and all(t == codec.T_ERROR and f["code"] in (E_BAD_FRAME, E_VERSION, E_TOO_LARGE)
                                       for t, _, f in r)
        assert (await good.call(16, {"still": "up"})) == {"still": "up"}
        await good.close()
        await s.close()
    asyncio.run(main())


def test_many_concurrent_connections():
    async def main():
        s, port = await _server()
        clients = await asyncio.gather(*(RpcClient.connect("127.0.0.1", port) for _ in range(100)))
        res = await asyncio.gather(*(c.call(16, {"i": i, "a": np.arange(i)}) for i, c in enumerate(clients)
                                     for _ in range(5)))
        assert [r["i"] for r in res] == [i for i in range(100) for _ in range(5)]
        await asyncio.gather(*(c.close() for c in clients))
        await s.close()
    asyncio.run(main())


def test_read_timeout_closes_stalled_frame():
    async def main():
        s, port = await _server(read_timeout=0.2)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(codec.pack_header(16, 0, 1, 100) + b"abc")  # promises 100 bytes, sends 3
        assert await asyncio.wait_for(r.read(), 3) == b""   # closed by the server
        w.close()
        await s.close()
    asyncio.run(main())


@pytest.fixture(scope="module")
def threaded_server():
    """An RpcServer on its own event loop thread: (port, loop)."""
    loop = asyncio.new_event_loop()
    s, port = loop.run_until_complete(_server(endless=False, max_frame=1024, read_timeout=1.0))
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield port
    asyncio.run_coroutine_threadsafe(s.close(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    t.join()


_frames = st.builds(
    lambda magic, version, t, flags, rid, length, payload, cut: (
        struct.pack("<4sBBHQI", magic, version, t, flags, rid, length) + payload)[:cut],
    st.sampled_from([b"ANOL", b"ANOM", b"\x00\x00\x00\x00"]), st.sampled_from([1, 1, 1, 0, 2, 255]),
    st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, (1 << 64) - 1),
    st.integers(0, 2048), st.binary(max_size=64), st.integers(0, 200))


@settings(max_examples=200, deadline=None)
@given(st.lists(_frames | st.binary(max_size=64), min_size=1, max_size=4))
def test_server_survives_hypothesis_frames(threaded_server, chunks):
    for t, _, f in _exchange(threaded_server, b"".join(chunks)):
        assert t in (codec.T_ERROR, codec.T_PING, codec.T_END, codec.T_AUTH) or 16 <= t <= 21
        if t == codec.T_ERROR:
            assert isinstance(f["code"], int) and isinstance(f["message"], str)
    with SyncClient("127.0.0.1", threaded_server) as c:
        assert c.call(16, {"ok": 1}) == {"ok": 1}
