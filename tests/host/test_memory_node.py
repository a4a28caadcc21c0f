"""host.serve.memory_node: one shard over TCP equals the reference backend; bad input never hurts the node."""
import asyncio
import importlib.util
import time

import numpy as np
import pytest

from host.backends import make_backend
from host.index.index_dir import load_index
from host.net.client import RpcClient
from host.net.frames import E_BAD_REQUEST, RemoteError
from host.serve import wire
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.timeout(60)
BACKENDS = ["reference"] + (["cpu"] if importlib.util.find_spec("host.backends.cpu_backend") else [])


def _serve(path, shard, backend="reference", k=10, lut_bits=16, max_nq=64):
    """Run ``body(client, node)`` against an in-process node on 127.0.0.1:0."""
    def run(body):
        async def main():
            node = MemoryNode.open(path, shard, lut_bits=lut_bits, k=k,
                                   config=MemoryNodeConfig(backend=backend, max_nq=max_nq))
            _, port = await node.start("127.0.0.1", 0)
            client = await RpcClient.connect("127.0.0.1", port, timeout=20)
            try:
                return await body(client, node)
            finally:
                await client.close()
                await node.close()
        return asyncio.run(main())
    return run


@pytest.fixture(scope="module")
def request_data(small_index, small_data):
    queries = small_data[1][:24]
    return queries, small_index.coarse_search(queries, 8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shard", [0, 2])
def test_scan_equals_reference_backend(small_index, request_data, backend, shard):
    queries, lists = request_data
    p = ScanParams(m=small_index.m, lut_bits=12, k=10)
    want = make_backend("reference", small_index, small_index.shards[shard], p).search(queries, lists)

    async def body(client, node):
        info = await client.call(wire.T_INFO)
        assert (info["shard"], info["nshards"], info["backend"]) == (shard, 3, backend)
        assert info["fingerprint"] == wire.index_fingerprint(small_index.manifest)
        full = await client.call(wire.T_SCAN, wire.scan_request(queries, lists, 10))
        part = await client.call(wire.T_SCAN, wire.scan_request(queries, lists, 3))
        return full, part, await client.call(wire.T_STATS)

    full, part, stats = _serve(small_index.path, shard, backend, lut_bits=12)(body)
    np.testing.assert_array_equal(full["ids"], want.ids)
    np.testing.assert_array_equal(full["dist"], want.dist)
    np.testing.assert_array_equal(full["scale"], want.scale)
    np.testing.assert_array_equal(part["ids"], want.ids[:, :3])   # top-3 is a prefix of top-10
    sizes = small_index.shards[shard].list_sizes()
    assert stats["requests"] == 2 and stats["queries"] == 48 and stats["errors"] == 0
    assert stats["codes"] == 2 * int(sizes[lists].sum()) and stats["scan_s"] > 0
    assert full["codes"] == int(sizes[lists].sum())


def test_bad_requests_get_errors_and_node_keeps_serving(small_index, request_data):
    queries, lists = request_data
    d, nlist = small_index.d, small_index.nlist
    bad = {
        "wrong dim": wire.scan_request(queries[:, :-1], lists, 5),
        "float64": {**wire.scan_request(queries, lists, 5), "queries": queries.astype(np.float64)},
        "list id -1": wire.scan_request(queries, np.where(lists == lists[0, 0], -1, lists), 5),
        "list id nlist": wire.scan_request(queries, np.full_like(lists, nlist), 5),
        "k=0": wire.scan_request(queries, lists, 0),
        "k>K": wire.scan_request(queries, lists, 11),
        "k str": {**wire.scan_request(queries, lists, 5), "k": "5"},
        "nq>max": wire.scan_request(np.tile(queries, (3, 1)), np.tile(lists, (3, 1)), 5),
        "rows differ": wire.scan_request(queries, lists[:-1], 5),
        "nprobe 0": wire.scan_request(queries, lists[:, :0], 5),
        "nan": wire.scan_request(np.where(queries > 0.5, np.nan, queries), lists, 5),
        "list twice": wire.scan_request(queries, np.concatenate([lists[:, :1], lists[:, :-1]], axis=1), 5),
        "deadline 0": {**wire.scan_request(queries, lists, 5), "deadline_s": 0},
        "missing": {"queries": queries},
        "empty": {},
    }

    async def body(client, node):
        good = wire.scan_request(queries, lists, 5)
        tasks = [client.call(wire.T_SCAN, good)] + [client.call(wire.T_SCAN, f) for f in bad.values()] \
            + [client.call(wire.T_SCAN, good)]
        res = await asyncio.gather(*tasks, return_exceptions=True)
        return res, await client.call(wire.T_STATS), await client.call(wire.T_SCAN, good)

    res, stats, after = _serve(small_index.path, 1, max_nq=len(queries) + 1)(body)
    assert isinstance(res[0], dict) and isinstance(res[-1], dict) and isinstance(after, dict)
    np.testing.assert_array_equal(res[0]["ids"], after["ids"])
    np.testing.assert_array_equal(res[-1]["ids"], after["ids"])
    for name, r in zip(bad, res[1:-1]):
        assert isinstance(r, RemoteError) and r.code == E_BAD_REQUEST, (name, r)
    assert "unknown list id -1" in str(res[3]) and "dimension 31" in str(res[1])
    assert f"row 0 probes list {lists[0, 0]} twice" in str(res[1 + list(bad).index("list twice")])
    assert stats["errors"] == len(bad) - 1 and stats["requests"] == 2     # the deadline is refused before the node


def test_node_rejects_wrong_shard_and_multi_shard_index(small_index):
    from host.spec.errors import InputError
    with pytest.raises(InputError, match="shard 3 out of range"):
        MemoryNode.open(small_index.path, 3)
    with pytest.raises(InputError, match="one shard"):
        MemoryNode(load_index(small_index.path, shards=[0, 1]), 0, ScanParams(m=small_index.m))


def test_random_scan_requests_and_vanishing_clients(small_index, request_data):
    """Random field maps (dtypes, shapes, ranges) get BAD_REQUEST or a valid answer; clients that leave
    mid-request do not disturb the node."""
    queries, lists = request_data
    rng = np.random.default_rng(7)
    dtypes = [np.float32, np.float64, np.int64, np.int32, np.uint8, np.float16]

    def rand_array(good: np.ndarray) -> np.ndarray:
        shape = [int(x) for x in rng.integers(0, 5, rng.integers(0, 4))] if rng.random() < 0.3 else good.shape
        a = rng.normal(0, 3 * small_index.nlist, size=shape) if rng.random() < 0.5 else good
        return np.asarray(a).astype(dtypes[rng.integers(len(dtypes))] if rng.random() < 0.5 else good.dtype)

    requests = []
    for _ in range(300):
        f = {"queries": rand_array(queries[:4]), "list_ids": rand_array(lists[:4]),
             "k": int(rng.integers(-2, 13)) if rng.random() < 0.8 else float(rng.random())}
        if rng.random() < 0.1:
            del f[list(f)[rng.integers(3)]]
        requests.append(f)

    async def body(client, node):
        host, port = node.server.address
        for _ in range(10):                          # send a scan, then vanish before the answer
            leaver = await RpcClient.connect(host, port)
            call = asyncio.create_task(leaver.call(wire.T_SCAN, wire.scan_request(queries, lists, 5)))
            await asyncio.sleep(0.005)
            await leaver.close()
            await asyncio.gather(call, return_exceptions=True)
        res = await asyncio.gather(*(client.call(wire.T_SCAN, f) for f in requests), return_exceptions=True)
        return res, await client.call(wire.T_SCAN, wire.scan_request(queries, lists, 10))

    res, after = _serve(small_index.path, 0)(body)
    for f, r in zip(requests, res):
        if isinstance(r, dict):                      # only well-formed requests succeed
            assert f["queries"].dtype == np.float32 and f["list_ids"].dtype == np.int64 and 1 <= f["k"] <= 10
            assert r["ids"].shape == (len(f["queries"]), f["k"])
        else:
            assert isinstance(r, RemoteError) and r.code == E_BAD_REQUEST, r
    assert any(isinstance(r, dict) for r in res) and after["ids"].shape == (len(queries), 10)


def test_board_backend_options_reach_the_driver(small_index, request_data):
    """A memory node on the virtual board (pynq driver over the HLS C model) equals the reference."""
    queries, lists = request_data
    p = ScanParams(m=small_index.m, lut_bits=16, k=10)
    want = make_backend("reference", small_index, small_index.shards[1], p).search(queries, lists)

    async def main():
        node = MemoryNode.open(small_index.path, 1, lut_bits=16, k=10,
                               config=MemoryNodeConfig(backend="pynq", backend_options={"device": "csim"}))
        _, port = await node.start("127.0.0.1", 0)
        client = await RpcClient.connect("127.0.0.1", port, timeout=60)
        try:
            return await client.call(wire.T_SCAN, wire.scan_request(queries, lists, 10))
        finally:
            await client.close()
            await node.close()

    got = asyncio.run(main())
    np.testing.assert_array_equal(got["ids"], want.ids)
    np.testing.assert_array_equal(got["dist"], want.dist)


def test_backend_opt_parsing():
    from host.cli.serve import parse_options
    from host.spec.errors import InputError

    assert parse_options(["device=csim", "lanes=4", "x=-2"]) == {"device": "csim", "lanes": 4, "x": -2}
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_options(["device"])


def test_small_scan_overtakes_a_large_one(small_index, small_data):
    """With slices of 16 (query, list) pairs a 1-query scan sent after a 64-query one (32 slices) is answered
    first; the sliced answer equals the reference backend's on the whole batch."""
    queries = small_data[1][:64]
    lists = small_index.coarse_search(queries, 8)
    want = make_backend("reference", small_index, small_index.shards[0], ScanParams(m=small_index.m)).search(
        queries, lists)

    async def main():
        node = MemoryNode.open(small_index.path, 0, config=MemoryNodeConfig(backend="reference", chunk_probes=16))
        scan = node.backend.search
        node.backend.search = lambda q, lst: (time.sleep(0.01), scan(q, lst))[1]
        _, port = await node.start("127.0.0.1", 0)
        client = await RpcClient.connect("127.0.0.1", port, timeout=20)
        big = asyncio.create_task(client.call(wire.T_SCAN, wire.scan_request(queries, lists, 10)))
        await asyncio.sleep(0.05)
        small = asyncio.create_task(client.call(wire.T_SCAN, wire.scan_request(queries[:1], lists[:1], 10)))
        done, _ = await asyncio.wait({big, small}, return_when=asyncio.FIRST_COMPLETED)
        first_small, big_done_then = small in done, big.done()
        res = await big
        await client.close()
        await node.close()
        return first_small, big_done_then, res

    first_small, big_done_then, res = asyncio.run(main())
    assert first_small and not big_done_then
    np.testing.assert_array_equal(res["ids"], want.ids[:, :10])
    np.testing.assert_array_equal(res["dist"], want.dist[:, :10])
