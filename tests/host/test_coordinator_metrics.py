"""Inner product, cosine and pre-transforms through the coordinator and memory nodes: equal to the in-process
reference model, bit for bit, and to faiss's own answers up to quantization."""
import asyncio

import faiss
import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import recall_at_k
from host.index.index_dir import export_index, load_index
from host.serve.coordinator import Coordinator
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("factory, metric", [("PCAR8,IVF16,PQ4", "cos"), (None, "ip")])
def test_coordinator_equals_reference_and_faiss(tiny_data, tmp_path, factory, metric):
    base, queries = tiny_data
    fidx = build_ivfpq(base, BuildConfig(nlist=16, m=4, factory=factory, metric=metric))
    index = load_index(export_index(fidx, tmp_path / "idx", nshards=2))
    params = ScanParams(m=4, k=10, lut_bits=12)
    want = LocalSearcher(index, params, backend="reference").search(queries, 6)

    async def main():
        nodes = [MemoryNode.open(index.path, s, lut_bits=12, k=10, config=MemoryNodeConfig(backend="cpu"))
                 for s in range(2)]
        addrs = [f"127.0.0.1:{(await n.start())[1]}" for n in nodes]
        coord = Coordinator(load_index(index.path, shards=[]), addrs)
        try:
            await coord.connect()
            return await coord.search(queries, 6)
        finally:
            await coord.close()
            for n in nodes:
                await n.close()

    got = asyncio.run(main())
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)
    np.testing.assert_array_equal(got.distances, want.distances)
    faiss.extract_index_ivf(fidx).nprobe = 6
    faiss_d, faiss_i = fidx.search(queries, 10)
    assert recall_at_k(got.ids, faiss_i, 10) >= 0.97
    np.testing.assert_allclose(got.distances[:, 0], faiss_d[:, 0], rtol=0.02)
