"""host.net.replicas and host.serve.replicas through a Coordinator: failover, ejection and re-admission of a
hung replica, no replica left, identity checks, deadlines reaching the nodes, drain telling the coordinator,
one log line per outage.  Every answer is compared with LocalSearcher (reference backend)."""
import asyncio
import contextlib
import logging
import time

import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.index.index_dir import export_index, load_index
from host.net import deadline as dl
from host.net.client import RpcClient
from host.net.frames import E_DEADLINE, E_UNAVAILABLE, RemoteError, RpcError
from host.serve import wire
from host.serve.coordinator import Coordinator, CoordinatorConfig
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.timeout(90)
FAST = dict(probe_interval_s=0.05, probe_timeout_s=0.3, timeout_s=20)


class FreezingProxy:
    """A TCP relay in front of a node; ``frozen`` stops it forwarding bytes (what a SIGSTOPped node looks
    like from the network: connections stay open, nothing answers)."""

    def __init__(self, port: int):
        self.port, self.frozen, self.tasks = port, asyncio.Event(), set()
        self.frozen.set()  # set = flowing

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _relay(self, r, w):
        r2, w2 = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src, dst):
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(1 << 16):
                    await self.frozen.wait()
                    dst.write(data)
                    await dst.drain()
            dst.close()
        self.tasks |= {asyncio.create_task(pipe(r, w2)), asyncio.create_task(pipe(r2, w))}

    async def close(self):
        self.server.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def index2(small_faiss, tmp_path_factory):
    return load_index(export_index(small_faiss, tmp_path_factory.mktemp("idx2"), nshards=2))


@contextlib.asynccontextmanager
async def cluster(index, shards):
    """In-process memory nodes for ``shards`` (a list, repeats = replicas); yields (addresses, nodes)."""
    nodes = [MemoryNode.open(index.path, s, config=MemoryNodeConfig(backend="reference")) for s in shards]
    addrs = [f"127.0.0.1:{(await n.start())[1]}" for n in nodes]
    try:
        yield addrs, nodes
    finally:
        for n in nodes:
            await n.close()


def _want(index, queries, nprobe=4):
    return LocalSearcher(index, ScanParams(m=index.m), backend="reference").search(queries, nprobe)


async def _until(cond, limit_s=20.0):
    for _ in range(int(limit_s / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def test_hung_replica_is_ejected_requests_fail_over_then_readmitted(index2, small_data, caplog):
    queries = small_data[1][:24]
    want = _want(index2, queries)

    async def main():
        async with cluster(index2, [0, 0, 1]) as (addrs, _):
            proxy = FreezingProxy(int(addrs[1].split(":")[1]))
            hung = await proxy.start()
            topo = f"0={addrs[0]}|{hung},1={addrs[2]}"
            coord = Coordinator(load_index(index2.path, shards=[]), topo, config=CoordinatorConfig(max_batch=8, **FAST))
            await coord.connect()
            proxy.frozen.clear()                                         # replica 2 of shard 0 hangs
            got = await asyncio.gather(*(coord.search(queries[i: i + 4], 4, deadline=dl.after(30))
                                         for i in range(0, 24, 4)))
            await _until(lambda: not coord.health()[1]["up"])
            assert coord.health()[1]["reason"]
            more = await coord.search(queries, 4)                        # served by the other replica
            proxy.frozen.set()                                           # it wakes up: re-admitted
            await _until(lambda: coord.health()[1]["up"])
            again = await coord.search(queries, 4)
            await coord.close()
            await proxy.close()
            return np.concatenate([g.ids for g in got]), more, again, hung

    with caplog.at_level(logging.INFO, logger="host.net.replicas"):
        ids, more, again, hung = asyncio.run(main())
    for got in (ids, more.ids, again.ids):
        np.testing.assert_array_equal(got, want.ids)
    lines = [r.getMessage() for r in caplog.records if hung in r.getMessage()]
    assert sum(m.startswith("ejected") for m in lines) == 1 and sum(m.startswith("re-admitted") for m in lines) == 1


def test_no_replica_left_fails_within_the_deadline_naming_the_shard(index2, small_data):
    async def main():
        async with cluster(index2, [0, 1]) as (addrs, _):
            proxy = FreezingProxy(int(addrs[1].split(":")[1]))
            hung = await proxy.start()
            coord = Coordinator(load_index(index2.path, shards=[]), f"0={addrs[0]},1={hung}",
                                config=CoordinatorConfig(probe_interval_s=30, probe_timeout_s=30, timeout_s=30))
            await coord.connect()
            proxy.frozen.clear()
            with pytest.raises(RpcError, match="shard 1") as e:
                await coord.search(small_data[1][:4], 4, deadline=dl.after(0.5))
            assert e.value.code == E_DEADLINE
            await coord.close()
            await proxy.close()
    asyncio.run(main())


@pytest.mark.parametrize("case", ["wrong shard", "other index"])
def test_replica_of_another_shard_or_index_is_refused(index2, small_index, case):
    async def main():
        async with cluster(index2, [0, 1, 1]) as (addrs, _), cluster(small_index, [0]) as (other, _):
            stranger = addrs[2] if case == "wrong shard" else other[0]
            coord = Coordinator(load_index(index2.path, shards=[]), f"0={addrs[0]}|{stranger},1={addrs[1]}")
            try:
                await coord.connect()
            finally:
                await coord.close()

    match = {"wrong shard": "serves shard 1, but it is listed .* as shard 0", "other index": "serves index"}[case]
    with pytest.raises(InputError, match=match):
        asyncio.run(main())


def test_nodes_drop_work_past_its_deadline(index2, small_data):
    """Three scans queue on a node whose scans take 0.5 s; with 0.3 s deadlines only the first one starts."""
    queries = small_data[1][:4]

    async def main():
        async with cluster(index2, [0]) as (addrs, nodes):
            calls, scan = [], nodes[0].backend.search
            nodes[0].backend.search = lambda *a: (calls.append(1), time.sleep(0.5), scan(*a))[2]
            c = await RpcClient.connect("127.0.0.1", int(addrs[0].split(":")[1]))
            req = {**wire.scan_request(queries, np.zeros((4, 2), np.int64) + [[0, 1]], 5), "deadline_s": 0.3}
            res = await asyncio.gather(*(c.call(wire.T_SCAN, req) for _ in range(3)), return_exceptions=True)
            await asyncio.sleep(0.8)                    # let the started scan end in its thread
            await c.close()
            return res, len(calls)

    res, started = asyncio.run(main())
    assert all(isinstance(r, RemoteError) and r.code == E_DEADLINE for r in res)
    assert started == 1


def test_draining_replica_tells_the_coordinator(index2, small_data):
    queries = small_data[1][:8]
    want = _want(index2, queries)

    async def main():
        async with cluster(index2, [0, 0, 1]) as (addrs, nodes):
            coord = Coordinator(load_index(index2.path, shards=[]), f"0={addrs[0]}|{addrs[1]},1={addrs[2]}",
                                config=CoordinatorConfig(**FAST))
            await coord.connect()
            assert await nodes[0].drain(5.0) == 0
            await _until(lambda: not coord.health()[0]["up"])
            assert "draining" in coord.health()[0]["reason"]
            got = [await coord.search(queries, 4) for _ in range(3)]
            await coord.close()
            return got

    for g in asyncio.run(main()):
        np.testing.assert_array_equal(g.ids, want.ids)


def test_one_log_line_per_outage(index2, small_data, caplog):
    async def main():
        async with cluster(index2, [0, 1]) as (addrs, nodes):
            coord = Coordinator(load_index(index2.path, shards=[]), addrs, config=CoordinatorConfig(**FAST))
            await coord.connect()
            caplog.clear()
            await nodes[1].close()
            errors = 0
            for _ in range(20):
                try:
                    await coord.search(small_data[1][:2], 4)
                except RpcError as e:
                    errors += e.code == E_UNAVAILABLE and "shard 1" in e.message
                await asyncio.sleep(0.01)
            await coord.close()
            return errors

    with caplog.at_level(logging.INFO):
        assert asyncio.run(main()) == 20
    about = [r for r in caplog.records if "shard 1" in r.getMessage()]
    assert len(about) == 1 and about[0].levelno == logging.WARNING and "ejected" in about[0].getMessage()
