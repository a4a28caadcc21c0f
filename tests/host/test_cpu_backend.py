import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host.backends.cpu_backend import CpuBackend, build_float_tables, build_quantized_tables
from host.backends.local_search import LocalSearcher
from host.backends.reference_backend import ReferenceBackend
from host.index.index_dir import IndexDir, Shard
from host.spec import reference
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

ROOT = Path(__file__).resolve().parents[2]


def _synthetic_index(rng, m: int, d: int, nlist: int, n: int, empty_frac: float = 0.2, metric: str = "L2") -> IndexDir:
    """An IndexDir with random centroids, codebooks, codes and shuffled ids; some lists empty."""
    sizes = rng.integers(0, 2 * n // nlist + 1, nlist)
    sizes[rng.random(nlist) < empty_frac] = 0
    offsets = np.zeros(nlist + 1, np.int64)
    offsets[1:] = np.cumsum(sizes)
    total = int(offsets[-1])
    shard = Shard(offsets=offsets, codes=rng.integers(0, 256, (total, m), dtype=np.uint8),
                  ids=rng.permutation(10 * total + 1)[:total].astype(np.int64))
    centroids = rng.standard_normal((nlist, d), dtype=np.float32) * np.float32(3)
    codebooks = rng.standard_normal((m, 256, d // m), dtype=np.float32)
    manifest = {"ntotal": total, "nshards": 1, "metric": metric}
    return IndexDir(path=Path("."), manifest=manifest, centroids=centroids, codebooks=codebooks, shards=[shard])


def _assert_same(index, shard, params, queries, lists, **options):
    got = CpuBackend(index, shard, params, **options).search(queries, lists)
    want = ReferenceBackend(index, shard, params).search(queries, lists)
    np.testing.assert_array_equal(got.dist, want.dist)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.scale, want.scale)


@pytest.mark.parametrize("seed", range(12))
def test_random_params_match_reference(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.choice([4, 8, 16]))
    params = ScanParams(m=m, lut_bits=int(rng.integers(8, 17)), k=int(rng.integers(1, 101)))
    index = _synthetic_index(rng, m, d=m * int(rng.choice([1, 2, 4])), nlist=32, n=int(rng.integers(0, 800)))
    queries = rng.standard_normal((9, index.d), dtype=np.float32) * np.float32(3)
    lists = rng.integers(0, index.nlist, (9, int(rng.integers(1, 9))))
    _assert_same(index, index.shards[0], params, queries, lists, threads=int(rng.integers(1, 3)))


@pytest.mark.parametrize("seed", range(6))
def test_inner_product_matches_reference(seed):
    """IP tables (per-query offsets) are bit-exact too: float tables, quantized tables, scan results."""
    rng = np.random.default_rng(100 + seed)
    m = int(rng.choice([4, 8, 16]))
    params = ScanParams(m=m, lut_bits=int(rng.integers(8, 17)), k=int(rng.integers(1, 101)))
    index = _synthetic_index(rng, m, d=m * int(rng.choice([1, 2, 4])), nlist=32, n=int(rng.integers(0, 800)),
                             metric="IP")
    queries = rng.standard_normal((9, index.d), dtype=np.float32) * np.float32(3)
    lists = rng.integers(0, index.nlist, (9, int(rng.integers(1, 9))))
    want_t = reference.float_tables(queries, lists, index.centroids, index.codebooks, metric="IP")
    np.testing.assert_array_equal(build_float_tables(index, queries, lists), want_t)
    want_q, want_s = reference.quantize_tables(want_t, params.lut_bits)
    got_q, got_s = build_quantized_tables(index, queries, lists, params.lut_bits, threads=1)
    np.testing.assert_array_equal(got_q, want_q)
    np.testing.assert_array_equal(got_s, want_s)
    _assert_same(index, index.shards[0], params, queries, lists, threads=int(rng.integers(1, 3)))


def test_shards_stay_memory_mapped(small_index):
    """The backend scans the shard files through their memory maps: no copy of codes or ids."""
    shard = small_index.shards[0]
    backend = CpuBackend(small_index, shard, ScanParams(m=8), threads=1)
    assert isinstance(shard.codes, np.memmap) and isinstance(shard.ids, np.memmap)
    assert np.shares_memory(backend._codes, shard.codes) and np.shares_memory(backend._ids, shard.ids)


def test_k_beyond_candidates_and_empty_shard():
    rng = np.random.default_rng(5)
    index = _synthetic_index(rng, 8, 16, nlist=8, n=20, empty_frac=0.5)
    params = ScanParams(m=8, k=100)
    queries = rng.standard_normal((4, 16), dtype=np.float32)
    lists = np.tile(np.arange(8), (4, 1))
    _assert_same(index, index.shards[0], params, queries, lists)
    empty = Shard(offsets=np.zeros(9, np.int64), codes=np.zeros((0, 8), np.uint8), ids=np.zeros(0, np.int64))
    res = CpuBackend(index, empty, params).search(queries, lists)
    assert (res.ids == -1).all() and (res.dist == reference.empty_dist(params)).all()
    _assert_same(index, empty, params, queries, lists)


def test_ties_break_by_id():
    """Zero centroids and codebooks: every table entry of a query is equal, so every code ties."""
    rng = np.random.default_rng(7)
    index = _synthetic_index(rng, 16, 32, nlist=4, n=400, empty_frac=0)
    index.centroids[:] = 0
    index.codebooks[:] = 0
    params = ScanParams(m=16, k=50, lut_bits=10)
    queries = rng.standard_normal((3, 32), dtype=np.float32)
    lists = np.array([[0, 1, 2, 3], [3, 2, 1, 0], [2, 2, 0, 1]])
    res = CpuBackend(index, index.shards[0], params).search(queries, lists)
    assert len(set(res.dist[0].tolist())) == 1
    shard = index.shards[0]
    assert res.ids[0].tolist() == sorted(shard.ids.tolist())[:50]
    _assert_same(index, shard, params, queries, lists)


@pytest.mark.parametrize("lut_bits", [8, 11, 16])
def test_table_builder_bit_exact(small_index, small_data, lut_bits):
    _, queries = small_data
    idx = small_index
    rng = np.random.default_rng(lut_bits)
    lists = np.concatenate([idx.coarse_search(queries[:50], 6), rng.integers(0, idx.nlist, (50, 6))], axis=1)
    want_t = reference.float_tables(queries[:50], lists, idx.centroids, idx.codebooks, idx.lterms)
    np.testing.assert_array_equal(build_float_tables(idx, queries[:50], lists), want_t)
    q, s = build_quantized_tables(idx, queries[:50], lists, lut_bits, threads=lut_bits % 2 + 1)
    want_q, want_s = reference.quantize_tables(want_t, lut_bits)
    assert q.dtype == np.uint16 and s.dtype == np.float32
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(s, want_s)


def test_table_builder_large_values_bit_exact():
    """Large magnitudes make float32 rounding (and any FMA contraction) visible."""
    rng = np.random.default_rng(11)
    index = _synthetic_index(rng, 8, 64, nlist=16, n=0)
    index.codebooks[:] *= np.float32(1e3)
    queries = rng.standard_normal((20, 64), dtype=np.float32) * np.float32(1e3)
    lists = rng.integers(0, 16, (20, 5))
    want_t = reference.float_tables(queries, lists, index.centroids, index.codebooks, index.lterms)
    np.testing.assert_array_equal(build_float_tables(index, queries, lists), want_t)
    want_q, want_s = reference.quantize_tables(want_t, 16)
    q, s = build_quantized_tables(index, queries, lists, 16)
    np.testing.assert_array_equal(q, want_q)
    np.testing.assert_array_equal(s, want_s)


@pytest.mark.parametrize("k,lut_bits", [(10, 16), (100, 8)])
def test_small_index_matches_reference(small_index, small_data, k, lut_bits):
    _, queries = small_data
    params = ScanParams(m=8, k=k, lut_bits=lut_bits)
    lists = small_index.coarse_search(queries[:60], 8)
    for shard in small_index.shards:
        _assert_same(small_index, shard, params, queries[:60], lists)


def test_local_search_cpu_equals_reference(small_index, small_data):
    _, queries = small_data
    params = ScanParams(m=8, k=10)
    got = LocalSearcher(small_index, params, backend="cpu", threads=2).search(queries[:40], 8)
    want = LocalSearcher(small_index, params, backend="reference").search(queries[:40], 8)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)


def test_bad_input_raises(small_index, small_data):
    _, queries = small_data
    b = CpuBackend(small_index, small_index.shards[0], ScanParams(m=8))
    lists = small_index.coarse_search(queries[:2], 4)
    with pytest.raises(InputError, match="dimension"):
        b.search(queries[:2, :16], lists)
    for bad in (-1, small_index.nlist):
        bad_lists = lists.copy()
        bad_lists[1, 2] = bad
        with pytest.raises(InputError, match=f"unknown list id {bad}"):
            b.search(queries[:2], bad_lists)
    with pytest.raises(InputError, match="threads"):
        CpuBackend(small_index, small_index.shards[0], ScanParams(m=8), threads=-1)
    with pytest.raises(InputError, match="lut_bits"):
        build_quantized_tables(small_index, queries[:2], lists, 17)


def test_bench_quick(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts/bench_scan.py"), "--quick", "--threads", "1",
                          "--cache", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = [line for line in out.stdout.splitlines() if line.startswith("bench_scan: anole-cpu ")]
    assert len(summary) == 1 and "x faiss (anole " in summary[0], out.stdout


def test_table_kernels_have_no_fma():
    """Bit-exactness needs separately rounded multiplies and adds: no FMA contraction in the table sums."""
    import re

    import numba

    from host.backends import cpu_kernels

    rng = np.random.default_rng(0)
    x, cbt = rng.standard_normal(32, dtype=np.float32), rng.standard_normal((8, 4, 256), dtype=np.float32)
    dterm, ft = np.empty((8, 256), np.float32), np.empty((3, 8, 256), np.float32)
    query_terms = numba.njit(cpu_kernels.query_terms.py_func)     # uncached, so its assembly can be read
    float_tables = numba.njit(cpu_kernels.float_tables_one.py_func)
    for ip in (False, True):
        query_terms(x, cbt, dterm, ip)
        float_tables(x, np.zeros(3, np.int64), rng.standard_normal((4, 32), dtype=np.float32),
                     rng.standard_normal((4, 8, 256), dtype=np.float32), dterm, ft, ip)
    for f in (query_terms, float_tables):
        asm = "".join(f.inspect_asm().values())
        assert not re.search(r"\bvfn?m(add|sub)\d", asm), f"FMA in {f.py_func.__name__}"


def test_quantize_rounds_half_to_even():
    from host.backends import cpu_kernels

    ft = np.zeros((1, 2, 4, 256), np.float32)
    ft[0, 0, 0, :6] = [0.5, 1.5, 2.5, 3.5, 254.5, 255.0]       # max 255 at 8 bits: the scale is exactly 1
    ft[0, 1, 3, :] = np.arange(256, dtype=np.float32) * np.float32(0.999)
    want_q, want_s = reference.quantize_tables(ft, 8)
    q = np.empty(ft.shape[1:], np.uint16)
    s = cpu_kernels.quantize_one(ft[0], np.float32(ft.max()), 255, q)
    assert s == want_s[0] == 1.0 and q[0, 0, :6].tolist() == [0, 2, 2, 4, 254, 255]
    np.testing.assert_array_equal(q, want_q[0])
