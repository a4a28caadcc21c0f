"""host.net deadlines, connection cap, idle timeout, shared-secret auth and drain (host.net.auth, deadline,
lifecycle, server): each against what the protocol promises (docs/protocol.md)."""
import asyncio
import logging
import socket

import pytest

from host.net import deadline as dl
from host.net.client import RpcClient
from host.net.frames import E_AUTH, E_BAD_REQUEST, E_BUSY, E_DEADLINE, E_UNAVAILABLE, RemoteError, RpcError
from host.net.lifecycle import bind
from host.net.server import RpcServer
from host.spec.errors import InputError

pytestmark = pytest.mark.timeout(60)


async def _server(**kw) -> tuple[RpcServer, int, dict]:
    """16: sleep f["t"] seconds, counting starts and finishes, and report the deadline the handler saw."""
    s, seen = RpcServer(**kw), {"started": 0, "finished": 0}

    async def sleep(f):
        seen["started"] += 1
        left = None if dl.current() is None else dl.current() - dl.now()
        await asyncio.sleep(f["t"])
        seen["finished"] += 1
        return {"left": left}

    s.register(16, sleep)
    _, port = await s.start("127.0.0.1", 0)
    return s, port, seen


def test_deadline_travels_and_expired_work_is_dropped():
    async def main():
        s, port, seen = await _server()
        c = await RpcClient.connect("127.0.0.1", port)
        got = await c.call(16, {"t": 0.0}, deadline=dl.after(5.0))
        assert 0 < got["left"] <= 5.0                         # the handler sees what is left of the deadline
        assert (await c.call(16, {"t": 0.0}))["left"] is None
        with pytest.raises(RpcError) as e:                    # the client gives up at the deadline ...
            await c.call(16, {"t": 30.0}, deadline=dl.after(0.2))
        assert e.value.code == E_DEADLINE
        with pytest.raises(RemoteError) as e:                 # ... and the server drops the work by itself
            await c.call(16, {"t": 30.0, "deadline_s": 0.2}, timeout=20)
        assert e.value.code == E_DEADLINE and seen["finished"] == 2
        for bad in (0.0, -1.0, "soon", float("inf")):
            with pytest.raises(RemoteError, match="deadline_s must be a number of seconds > 0") as e:
                await c.call(16, {"t": 0.0, "deadline_s": bad})
            assert e.value.code == E_BAD_REQUEST
        await c.close()
        await s.close()
    asyncio.run(main())


def test_connection_cap_and_idle_timeout():
    async def main():
        s, port, _ = await _server(max_connections=2, idle_timeout=0.3)
        a, b = [await RpcClient.connect("127.0.0.1", port) for _ in range(2)]
        third = await RpcClient.connect("127.0.0.1", port)
        with pytest.raises(RpcError) as e:
            await third.call(16, {"t": 0.0}, timeout=10)
        assert e.value.code in (E_BUSY, E_UNAVAILABLE)       # the BUSY frame, then the close
        await third.close()
        for _ in range(500):                                 # idle connections are closed by the server
            if a.closed and b.closed:
                break
            await asyncio.sleep(0.02)
        assert a.closed and b.closed
        c = await RpcClient.connect("127.0.0.1", port)       # room again
        assert (await c.call(16, {"t": 0.0}))["left"] is None
        await c.close()
        await s.close()
    asyncio.run(main())


def test_shared_secret(monkeypatch, caplog):
    monkeypatch.delenv("ANOLE_SECRET", raising=False)

    async def main():
        s, port, seen = await _server(secret="s3cret")
        c = await RpcClient.connect("127.0.0.1", port, secret="s3cret")
        assert (await c.call(16, {"t": 0.0}))["left"] is None
        await c.close()
        with pytest.raises(RpcError, match="shared secret") as e:     # mutual: the client notices first
            await RpcClient.connect("127.0.0.1", port, secret="wrong")
        assert e.value.code == E_AUTH
        anon = await RpcClient.connect("127.0.0.1", port)
        with pytest.raises(RemoteError, match="requires a shared secret") as e:
            await anon.call(16, {"t": 0.0})
        assert e.value.code == E_AUTH and seen["started"] == 1
        await anon.close()
        await s.close()
        monkeypatch.setenv("ANOLE_SECRET", "from-env")        # the environment variable serves both sides
        s, port, _ = await _server()
        c = await RpcClient.connect("127.0.0.1", port)
        assert (await c.call(16, {"t": 0.0}))["left"] is None
        await c.close()
        await s.close()
        monkeypatch.delenv("ANOLE_SECRET")
        with caplog.at_level(logging.WARNING):
            s, _, _ = await _server()
            await s.close()
            open_server = RpcServer()
            await open_server.start("0.0.0.0", 0)
            await open_server.close()
        warnings = [r.getMessage() for r in caplog.records if "without a shared secret" in r.getMessage()]
        assert len(warnings) == 1 and "0.0.0.0" in warnings[0]
    asyncio.run(main())


def test_drain_finishes_in_flight_and_says_goodbye():
    async def main():
        s, port, seen = await _server()
        c = await RpcClient.connect("127.0.0.1", port)
        told = []
        c.on_goaway = lambda: told.append(True)
        pending = asyncio.create_task(c.call(16, {"t": 0.5}))
        await asyncio.sleep(0.1)
        left = await s.drain(10.0)
        assert left == 0 and told == [True] and c.draining
        assert (await pending)["left"] is None              # the request in flight was answered
        with pytest.raises(RemoteError, match="draining") as e:
            await c.call(16, {"t": 0.0})                    # new work on the old connection is refused
        assert e.value.code == E_UNAVAILABLE
        with pytest.raises(RpcError, match="cannot connect"):
            await RpcClient.connect("127.0.0.1", port, connect_timeout=2)
        await c.close()
        await s.close()
    asyncio.run(main())


def test_bind_reports_a_port_in_use():
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    with pytest.raises(InputError, match=rf"cannot listen on 127.0.0.1:{port}: .*in use"):
        bind("127.0.0.1", port)
    taken.close()
    bind("127.0.0.1", port).close()
    assert isinstance(taken, socket.socket)
