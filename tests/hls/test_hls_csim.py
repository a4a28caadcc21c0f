"""C simulation of the HLS kernel (g++ + compat headers), bit-exact against host.spec.reference.scan_query."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from host.board.hls_build import build_csim, run_testbench
from host.index.index_dir import Shard
from host.spec import reference
from host.spec.layout import KernelLayout
from host.spec.scan_params import KSUB, ScanParams

SWEEP = [
    ScanParams(m=4, lanes=1, lut_bits=8, k=1),
    ScanParams(m=4, lanes=4, lut_bits=16, k=100, id_bits=64),
    ScanParams(m=8, lanes=2, lut_bits=12, k=10),
    ScanParams(m=8, lanes=8, lut_bits=8, k=100),
    ScanParams(m=16, lanes=4, lut_bits=16, k=10),
    ScanParams(m=16, lanes=16, lut_bits=12, k=1, id_bits=48),
    ScanParams(m=32, lanes=4, lut_bits=8, k=10),
    ScanParams(m=32, lanes=2, lut_bits=16, k=100),
]


@pytest.fixture(scope="module", autouse=True)
def _built():
    """Build all parameter sets up front, two at a time (cached under build/hls/)."""
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(build_csim, SWEEP))


def random_shard(rng, p: ScanParams, sizes) -> Shard:
    """A shard with lists of the given sizes, random codes and distinct random ids < 2**id_bits."""
    sizes = np.asarray(sizes, np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    codes = rng.integers(0, KSUB, (n, p.m), dtype=np.uint8)
    hi = min(p.max_id, (1 << 63) - 1)
    ids = np.unique(rng.integers(0, hi, 2 * n + 8, dtype=np.int64, endpoint=True))
    rng.shuffle(ids)
    return Shard(offsets=offsets, codes=codes, ids=ids[:n])


def check(p: ScanParams, shard: Shard, qtables: np.ndarray, list_ids: np.ndarray, tmp_path):
    lay = KernelLayout(p)
    codes, ids, first = lay.shard_image(shard)
    bufs = {"codes": codes, "ids": ids, "tables": lay.tables(qtables),
            "lists": lay.descriptors(first, shard.list_sizes(), list_ids)}
    nq, nprobe = list_ids.shape
    raw, config = run_testbench(p, bufs, nq, nprobe, tmp_path)
    assert config == lay.config_word
    dist, got_ids = lay.unpack_results(raw, nq)
    for q in range(nq):
        want_d, want_i = reference.scan_query(p, qtables[q], [shard.list(int(c)) for c in list_ids[q]])
        np.testing.assert_array_equal(dist[q], want_d, err_msg=f"query {q} dist")
        np.testing.assert_array_equal(got_ids[q], want_i, err_msg=f"query {q} ids")


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: f"m{p.m}_l{p.lanes}_b{p.lut_bits}_k{p.k}_i{p.id_bits}")
def test_random_scans_bit_exact(p, tmp_path):
    rng = np.random.default_rng(p.m * 1000 + p.lanes * 100 + p.k)
    # empty lists, lists shorter than lanes, one long list; K > candidates for small probes
    sizes = [0, 1, p.lanes - 1 if p.lanes > 1 else 2, p.lanes, p.lanes + 1, 37, 0, 300, 3, 129]
    shard = random_shard(rng, p, sizes)
    nq, nprobe = 12, 3
    list_ids = rng.integers(0, len(sizes), (nq, nprobe))
    list_ids[0] = [0, 6, 0]                      # only empty lists: all K slots empty
    list_ids[1] = [1, 0, 2]                      # fewer candidates than K (for K >= 10)
    qtables = rng.integers(0, p.lut_max, (nq, nprobe, p.m, KSUB), dtype=np.uint16, endpoint=True)
    qtables[2] = p.lut_max                       # maximum table values: largest possible distance
    qtables[3] = 7                               # all-equal distances: order decided by id alone
    qtables[4] = rng.integers(0, 2, (nprobe, p.m, KSUB))   # many ties
    check(p, shard, qtables, list_ids, tmp_path)


def test_duplicate_probes_and_zero_queries(tmp_path):
    """The same list probed twice yields each id twice (as the reference); nq = 0 writes nothing."""
    p = SWEEP[4]
    rng = np.random.default_rng(5)
    shard = random_shard(rng, p, [5, 50, 2])
    qtables = rng.integers(0, p.lut_max, (2, 2, p.m, KSUB), dtype=np.uint16)
    check(p, shard, qtables, np.array([[1, 1], [2, 2]]), tmp_path)
    lay = KernelLayout(p)
    codes, ids, _ = lay.shard_image(shard)
    raw, config = run_testbench(p, {"codes": codes, "ids": ids, "tables": np.zeros(0, np.uint16),
                                    "lists": np.zeros(0, np.uint64)}, 0, 2, tmp_path)
    assert raw.size == 0 and config == lay.config_word
    raw, _ = run_testbench(p, {"codes": codes, "ids": ids, "tables": np.zeros(0, np.uint16),
                               "lists": np.zeros(0, np.uint64)}, 2, 0, tmp_path)
    dist, got = lay.unpack_results(raw, 2)                  # nprobe = 0: K empty slots per query
    assert (dist == lay.empty_dist).all() and (got == -1).all()


FULL = [ScanParams(m=m, lanes=lanes, lut_bits=b, k=k)
        for m in (4, 8, 16, 32) for b in (8, 12, 16) for k in (1, 10, 100)
        for lanes in [(1, 2, 4, 8)[(m + b + k) % 4]]]


@pytest.mark.sweep
@pytest.mark.parametrize("p", FULL, ids=lambda p: f"m{p.m}_l{p.lanes}_b{p.lut_bits}_k{p.k}")
def test_full_sweep(p, tmp_path):
    """The whole m x lut_bits x k grid (36 builds, about 2 minutes cold; `make test-all`)."""
    from host.board.csim_check import check
    assert check(p, nq=30, nprobe=4, seed=p.m + p.k, workdir=tmp_path) == 0
