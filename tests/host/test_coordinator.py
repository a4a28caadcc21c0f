"""host.serve.coordinator: results through 1..4 memory nodes equal LocalSearcher exactly; failures are clear."""
import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.cli import main as cli_main
from host.index.datasets import write_vecs
from host.index.index_dir import export_index, load_index
from host.net.client import RpcClient, SyncClient
from host.net.frames import E_TIMEOUT, E_UNAVAILABLE, RpcError
from host.serve import coordinator as coordinator_module
from host.serve import wire
from host.serve.coordinator import Coordinator, CoordinatorConfig, remote_search
from host.serve.coordinator_server import CoordinatorServer, client_search
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]
HAS_CPU = importlib.util.find_spec("host.backends.cpu_backend") is not None
NODE_BACKEND = "cpu" if HAS_CPU else "reference"


@pytest.fixture(scope="module")
def indexes(small_faiss, small_index, tmp_path_factory):
    """The small index over 1, 2, 3 and 4 shards."""
    out = {3: small_index}
    for n in (1, 2, 4):
        out[n] = load_index(export_index(small_faiss, tmp_path_factory.mktemp(f"idx{n}"), nshards=n))
    return out


@pytest.fixture(scope="module")
def queries(small_data):
    return small_data[1][:40]


@contextlib.asynccontextmanager
async def serving(index, shards=None, backend="reference", lut_bits=16, k=10):
    """In-process memory nodes on 127.0.0.1:0 for ``shards`` (default all); yields (addresses, nodes)."""
    nodes = [MemoryNode.open(index.path, s, lut_bits=lut_bits, k=k, config=MemoryNodeConfig(backend=backend))
             for s in (range(len(index.shards)) if shards is None else shards)]
    addrs = [f"127.0.0.1:{(await n.start())[1]}" for n in nodes]
    try:
        yield addrs, nodes
    finally:
        for n in nodes:
            await n.close()


async def until(cond, limit_s: float = 20.0) -> None:
    """Wait for ``cond()`` (a state the coordinator reaches on its own), failing after a generous bound."""
    for _ in range(int(limit_s / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def _local(index, queries, nprobe, params):
    return LocalSearcher(index, params, backend="reference").search(queries, nprobe)


@pytest.mark.parametrize("nshards,backend", [(1, "reference"), (2, "reference"), (3, NODE_BACKEND), (4, "reference")])
def test_distributed_equals_local(indexes, queries, nshards, backend):
    index = indexes[nshards]
    params = ScanParams(m=index.m, lut_bits=14, k=10)
    want = _local(index, queries, 8, params)

    async def main():
        async with serving(index, backend=backend, lut_bits=14) as (addrs, _):
            coord = Coordinator(load_index(index.path, shards=[]), addrs)
            await coord.connect()
            got = await coord.search(queries, 8)
            top3 = await coord.search(queries, 8, k=3)
            stats = await coord.node_stats()
            await coord.close()
            return got, top3, stats

    got, top3, stats = asyncio.run(main())
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)
    np.testing.assert_array_equal(got.distances, want.distances)
    np.testing.assert_array_equal(top3.ids, want.ids[:, :3])
    assert {"coarse", "network", "scan", "merge", "queue", "total"} <= set(got.timings)
    assert sum(s["queries"] for s in stats) == 2 * len(queries) * nshards


def test_remote_search_one_shot(indexes, queries, monkeypatch):
    index = indexes[2]
    params = ScanParams(m=index.m, k=5)
    want = _local(index, queries, 4, params)
    reads = []                                   # the coordinator's clock: each read advances it by 1

    def clock():
        reads.append(float(len(reads)))
        return reads[-1]

    async def main():
        async with serving(index, k=10) as (addrs, _):
            monkeypatch.setattr(coordinator_module, "time", types.SimpleNamespace(perf_counter=clock))
            return await asyncio.to_thread(remote_search, ",".join(addrs), load_index(index.path, shards=[]),
                                           queries, 4, params, CoordinatorConfig(max_batch=16))

    got = asyncio.run(main())
    slices = -(-len(queries) // 16)
    assert slices >= 3 and got.timings["batch"] == 16
    # over max_batch: one interval from the request's first clock read to its last (each slice reads it 5 times),
    # not the sum of the slices' totals (3 reads apart each)
    assert len(reads) == 5 * slices + 2 and got.timings["total"] == reads[-1] - reads[0]
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)


@pytest.mark.parametrize("case", ["same shard twice", "other index", "missing shard", "lut_bits", "k too small"])
def test_mismatched_node_sets_are_refused(indexes, case):
    index = indexes[3]
    params = ScanParams(m=index.m, lut_bits=16 if case != "lut_bits" else 12, k=20 if case == "k too small" else 10)
    shards = {"same shard twice": [0, 1, 1], "missing shard": [0, 2]}.get(case, [0, 1, 2])
    match = {"same shard twice": "both serve shard 1", "other index": "serves index", "missing shard":
             r"no memory node serves shard\(s\) \[1\]", "lut_bits": "lut_bits=12", "k too small": "k >= 20"}[case]

    async def main():
        async with serving(index, shards) as (addrs, _), serving(indexes[2], [1]) as (other, _):
            if case == "other index":
                addrs[1] = other[0]
            coord = Coordinator(load_index(index.path, shards=[]), addrs, params)
            try:
                await coord.connect()
            finally:
                await coord.close()

    with pytest.raises(InputError, match=match):
        asyncio.run(main())


def test_node_going_away_mid_query_then_back(indexes, queries):
    index = indexes[3]

    async def main():
        async with serving(index) as (addrs, nodes):
            coord = Coordinator(load_index(index.path, shards=[]), addrs,
                                config=CoordinatorConfig(timeout_s=5, probe_interval_s=0.05))
            await coord.connect()
            first = await coord.search(queries, 4)
            scan = nodes[1].backend.search
            nodes[1].backend.search = lambda *a: (time.sleep(0.3), scan(*a))[1]
            pending = asyncio.create_task(coord.search(queries, 4))
            await asyncio.sleep(0.1)
            port = int(addrs[1].split(":")[1])
            await nodes[1].close()                          # the node dies mid-query
            with pytest.raises(RpcError, match=rf"memory node {addrs[1]} \(shard 1\)") as e:
                await pending
            # the lost connection is reported as such, not found later by the 5 s deadline
            assert e.value.code == E_UNAVAILABLE and "no answer within" not in str(e.value)
            await until(lambda: "cannot connect" in coord.health()[1]["reason"])   # probed while down
            with pytest.raises(RpcError, match=r"shard 1: no replica in service \(.*cannot connect") as e:
                await coord.search(queries, 4)              # still down: clear error naming the shard, no hang
            assert e.value.code == E_UNAVAILABLE
            nodes[1] = MemoryNode.open(index.path, 1, config=MemoryNodeConfig(backend="reference"))
            await nodes[1].start("127.0.0.1", port)         # back: the probes re-admit it
            await until(lambda: coord.health()[1]["up"])
            again = await coord.search(queries, 4)
            await coord.close()
            return first, again

    first, again = asyncio.run(main())
    np.testing.assert_array_equal(first.ids, again.ids)


def test_hung_node_times_out_with_its_name(indexes, queries):
    index = indexes[2]

    async def main():
        async with serving(index) as (addrs, nodes):
            coord = Coordinator(load_index(index.path, shards=[]), addrs, config=CoordinatorConfig(timeout_s=0.3))
            await coord.connect()
            scan = nodes[0].backend.search
            nodes[0].backend.search = lambda *a: (time.sleep(1.0), scan(*a))[1]
            with pytest.raises(RpcError, match=rf"memory node {addrs[0]} \(shard 0\): .*no answer within 0.3 s") as e:
                await coord.search(queries, 4)
            assert e.value.code == E_TIMEOUT                # the deadline fired, not a lost connection
            await coord.close()

    asyncio.run(main())


def test_concurrent_clients_are_batched(indexes, small_data):
    index = indexes[3]
    qs = [small_data[1][20 * i: 20 * i + 20] for i in range(8)]
    params = ScanParams(m=index.m)
    searcher = LocalSearcher(index, params, backend="reference")
    wants = [searcher.search(q, 6) for q in qs]

    async def main():
        async with serving(index, backend=NODE_BACKEND) as (addrs, _):
            coord = Coordinator(load_index(index.path, shards=[]), addrs,
                                config=CoordinatorConfig(max_batch=64, max_wait_s=0.5))   # a window far wider than the spread of arrivals
            await coord.connect()
            server = CoordinatorServer(coord)
            _, port = await server.start()
            clients = [await RpcClient.connect("127.0.0.1", port) for _ in qs]
            got = await asyncio.gather(*(client_search(c, q, 6, 10) for c, q in zip(clients, qs)))
            stats = await clients[0].call(wire.T_STATS)
            for c in clients:
                await c.close()
            await server.close()
            await coord.close()
            return got, stats

    got, stats = asyncio.run(main())
    for g, w in zip(got, wants):
        np.testing.assert_array_equal(g.ids, w.ids)
        np.testing.assert_array_equal(g.dist, w.dist)
    assert stats["requests"] == 8 and stats["batches"] < 8 and max(g.timings["batch"] for g in got) <= 64


def _spawn(*args, port: int = 0) -> tuple[subprocess.Popen, str]:
    """Start `python -m host.cli serve ...`; returns the process and its 'host:port' once listening."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), NUMBA_NUM_THREADS="2")
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "serve", *args, "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise AssertionError(f"server did not start: {line!r}")
    return proc, line.split()[-1]


def test_real_processes(indexes, queries, tmp_path):
    index = indexes[2]
    params = ScanParams(m=index.m, k=10)
    want = _local(index, queries, 8, params)
    procs = []
    try:
        for s in range(2):
            procs.append(_spawn("memory-node", "--index", str(index.path), "--shard", str(s), "--backend", NODE_BACKEND))
        addrs = [a for _, a in procs]
        got = remote_search(addrs, load_index(index.path, shards=[]), queries, 8, params)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dist, want.dist)
        write_vecs(tmp_path / "q.fvecs", queries)                # `anole search --memory-nodes` = local
        common = ["search", "--index", str(index.path), "--queries", str(tmp_path / "q.fvecs"), "--nprobe", "8"]
        assert cli_main([*common, "--memory-nodes", ",".join(addrs), "--out", str(tmp_path / "r.npz")]) == 0
        assert cli_main([*common, "--backend", "reference", "--out", str(tmp_path / "l.npz")]) == 0
        with np.load(tmp_path / "r.npz") as remote, np.load(tmp_path / "l.npz") as local:
            np.testing.assert_array_equal(remote["ids"], local["ids"])
            np.testing.assert_array_equal(remote["distances"], local["distances"])
        procs.append(_spawn("coordinator", "--index", str(index.path), "--memory-nodes", ",".join(addrs)))
        host, port = procs[-1][1].split(":")
        with SyncClient(host, int(port)) as c:
            res = wire.parse_search_response(c.call(wire.T_SEARCH, wire.search_request(queries, 8, 10)))
            np.testing.assert_array_equal(res.ids, want.ids)
            procs[1][0].kill()                              # a node dies: a clear error, the coordinator lives
            procs[1][0].wait()
            with pytest.raises(RpcError, match=rf"memory node {addrs[1]}"):
                c.call(wire.T_SEARCH, wire.search_request(queries, 8, 10))
            info = c.call(wire.T_INFO)
            assert info["nodes"] == addrs and [h["up"] for h in info["health"]] == [True, False]
        taken = int(addrs[0].split(":")[1])                  # a port in use: one line, before the index loads
        late = subprocess.run([sys.executable, "-m", "host.cli", "serve", "memory-node", "--index", str(index.path),
                               "--shard", "0", "--port", str(taken)], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
        assert late.returncode == 2 and f"cannot listen on 127.0.0.1:{taken}" in late.stderr
        assert "Traceback" not in late.stderr and "memory node: shard" not in late.stderr
        for proc, _ in (procs[0], procs[2]):                # SIGTERM, then SIGINT: drained, exit 0, logged
            proc.send_signal(signal.SIGTERM if proc is procs[0][0] else signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0 and "draining" in err and "drained" in err, err[-2000:]
    finally:
        for p, _ in procs:
            p.kill()
            p.wait()
            p.stdout.close()
