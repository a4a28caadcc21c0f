import faiss
import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.index.datasets import recall_at_k
from host.spec import reference
from host.spec.scan_params import ScanParams


def _random_case(rng, m, nlists, lut_bits, max_len=50):
    tables = rng.integers(0, 1 << lut_bits, size=(nlists, m, 256), dtype=np.int64).astype(np.uint16)
    lists, next_id = [], 0
    for _ in range(nlists):
        n = int(rng.integers(0, max_len))
        ids = rng.permutation(10_000)[:n] + next_id
        next_id += 10_000
        lists.append((rng.integers(0, 256, size=(n, m), dtype=np.uint8), ids.astype(np.int64)))
    return tables, lists


@pytest.mark.parametrize("seed", range(20))
def test_scan_matches_bruteforce(seed):
    rng = np.random.default_rng(seed)
    p = ScanParams(m=int(rng.choice([4, 8, 16])), lut_bits=int(rng.integers(8, 17)), k=int(rng.integers(1, 30)))
    tables, lists = _random_case(rng, p.m, int(rng.integers(1, 6)), p.lut_bits)
    dist, ids = reference.scan_query(p, tables, lists)
    # brute force: every candidate's distance as a Python sum, sorted by (dist, id)
    cands = sorted((sum(int(t[j, c[j]]) for j in range(p.m)), int(i))
                   for t, (codes, idl) in zip(tables, lists) for c, i in zip(codes, idl))
    want = cands[: p.k] + [(reference.empty_dist(p), -1)] * (p.k - min(p.k, len(cands)))
    assert list(zip(dist.tolist(), ids.tolist())) == want


def test_ties_break_by_id():
    p = ScanParams(m=4, k=5)
    tables = np.zeros((2, 4, 256), np.uint16)
    lists = [(np.zeros((4, 4), np.uint8), np.array([40, 7, 9, 3])), (np.zeros((3, 4), np.uint8), np.array([5, 1, 8]))]
    dist, ids = reference.scan_query(p, tables, lists)
    assert dist.tolist() == [0] * 5 and ids.tolist() == [1, 3, 5, 7, 8]


def test_empty_lists_and_k_beyond_candidates():
    p = ScanParams(m=4, k=8)
    tables = np.full((3, 4, 256), 7, np.uint16)
    lists = [(np.zeros((0, 4), np.uint8), np.zeros(0, np.int64)), (np.ones((2, 4), np.uint8), np.array([11, 10])),
             (np.zeros((0, 4), np.uint8), np.zeros(0, np.int64))]
    dist, ids = reference.scan_query(p, tables, lists)
    assert ids.tolist() == [10, 11] + [-1] * 6
    assert dist.tolist() == [28, 28] + [reference.empty_dist(p)] * 6


def test_max_table_values_do_not_overflow():
    p = ScanParams(m=64, lut_bits=16, k=3)
    tables = np.full((1, 64, 256), p.lut_max, np.uint16)
    dist, _ = reference.scan_query(p, tables, [(np.zeros((3, 64), np.uint8), np.arange(3))])
    assert dist.tolist() == [64 * p.lut_max] * 3 and 64 * p.lut_max < reference.empty_dist(p)


def test_float_tables_equal_direct_definition(small_index, small_data):
    """T from the decomposition equals ||(x - C[c])_m - P[m][k]||^2 up to float32 rounding."""
    _, queries = small_data
    idx = small_index
    lists = idx.coarse_search(queries[:5], 4)
    t = reference.float_tables(queries[:5], lists, idx.centroids, idx.codebooks)
    r = reference.split_sub(queries[:5, None] - idx.centroids[lists], idx.m)       # [5, 4, m, dsub]
    direct = ((r[:, :, :, None, :] - idx.codebooks[None, None]) ** 2).sum(-1)
    np.testing.assert_allclose(t, direct, rtol=1e-4, atol=1e-3 * direct.max())


def test_quantization_range_and_scale():
    rng = np.random.default_rng(0)
    t = rng.random((3, 2, 4, 256), dtype=np.float32) * 100
    t[1] = 0.0                                                 # a query whose tables are all zero
    q, s = reference.quantize_tables(t, 12)
    assert q.max() == 4095 and q[0].max() == 4095 and q[1].max() == 0 and s[1] == 1.0
    np.testing.assert_allclose(q[0] / s[0], t[0], atol=0.5 / s[0] + 1e-6)


def test_merge_is_topk_of_union():
    rng = np.random.default_rng(3)
    p = ScanParams(m=4, k=6)
    d = rng.integers(0, 50, (3, 10, 6))
    i = rng.permutation(180).reshape(3, 10, 6)
    d[1, :, 4:] = reference.empty_dist(p)
    i[1, :, 4:] = -1
    md, mi = reference.merge_topk(p, d, i)
    for q in range(10):
        cands = sorted((int(a), int(b)) for a, b in zip(d[:, q].ravel(), i[:, q].ravel()) if b >= 0)
        assert list(zip(md[q].tolist(), mi[q].tolist())) == cands[:6]


@pytest.mark.parametrize("lut_bits", [8, 12, 16])
def test_reference_recall_vs_faiss(small_index, small_faiss, small_data, lut_bits):
    """The reference model finds the ids faiss IndexIVFPQ finds (recall@10 >= 0.99 at 16 bits)."""
    _, queries = small_data
    nprobe = 8
    s = LocalSearcher(small_index, ScanParams(m=8, k=10, lut_bits=lut_bits), backend="reference")
    res = s.search(queries, nprobe)
    small_faiss.nprobe = nprobe
    fd, fi = small_faiss.search(queries, 10)
    r = recall_at_k(res.ids, fi, 10)
    assert r >= {8: 0.85, 12: 0.97, 16: 0.99}[lut_bits], r
    if lut_bits == 16:
        np.testing.assert_allclose(res.distances, fd, rtol=2e-3, atol=1e-3 * fd.max())


@pytest.mark.parametrize("field, value", [("m", 3), ("m", 65), ("lanes", 3), ("lanes", 32), ("lut_bits", 7),
                                          ("lut_bits", 17), ("k", 0), ("k", 101), ("id_bits", 8), ("m", 4.0)])
def test_scan_params_validation(field, value):
    with pytest.raises(ValueError, match=field):
        ScanParams(**{field: value})


def test_scan_params_derived_widths():
    p = ScanParams(m=16, lut_bits=16)
    assert p.dist_bits == 20 and p.lut_max == 65535 and p.ksub == 256
    assert ScanParams(m=12, lut_bits=8).dist_bits == 12
    assert ScanParams.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError, match="unknown ScanParams fields"):
        ScanParams.from_dict({"m": 8, "width": 3})


def test_ip_tables_are_unsigned_and_offsets_give_faiss_distances(small_data, small_ip_faiss, tmp_path):
    """IP tables are non-negative, and -(sum_m T[code] + O) is faiss's own inner product for every code."""
    from faiss.contrib.inspect_tools import get_invlist

    from host.index.index_dir import export_index, load_index

    idx = load_index(export_index(small_ip_faiss, tmp_path / "ip", nshards=1))
    _, queries = small_data
    lists = idx.coarse_search(queries[:4], 8)
    t = reference.float_tables(queries[:4], lists, idx.centroids, idx.codebooks, metric="IP")
    assert t.min() >= 0 and (t.min(axis=(1, 3)) == 0).all()         # the offset reaches 0 in every column
    offset = reference.ip_offsets(queries[:4], lists, idx.centroids, idx.codebooks)
    ivf = faiss.extract_index_ivf(small_ip_faiss)
    for q in range(4):
        c = int(lists[q, 0])
        ids, codes = get_invlist(ivf.invlists, c)
        ours = -(t[q, 0][np.arange(8), codes.reshape(len(ids), -1).astype(np.intp)].sum(axis=1) + offset[q])
        coarse = np.array([[queries[q] @ idx.centroids[c]]], np.float32)
        want_d, want_i = ivf.search_preassigned(queries[q: q + 1], len(ids), np.array([[c]]), coarse)
        np.testing.assert_allclose(ours[np.argsort(ids)], want_d[0][np.argsort(want_i[0])], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lut_bits", [8, 16])
def test_ip_recall_vs_faiss_at_least_l2(small_data, small_faiss, small_ip_faiss, tmp_path, lut_bits):
    """design.md §7: recall@10 of ids vs faiss's own IP index >= the L2 figure at the same lut_bits (>= 0.99 at 16)."""
    from host.index.index_dir import export_index, load_index

    _, queries = small_data
    recalls = {}
    for name, fidx in (("L2", small_faiss), ("IP", small_ip_faiss)):
        idx = load_index(export_index(fidx, tmp_path / name, nshards=2))
        res = LocalSearcher(idx, ScanParams(m=8, k=10, lut_bits=lut_bits), backend="reference").search(queries, 16)
        faiss.extract_index_ivf(fidx).nprobe = 16
        dist, want = fidx.search(queries, 10)
        recalls[name] = recall_at_k(res.ids, want, 10)
        if name == "IP":
            assert np.all(res.distances[:, 0] >= res.distances[:, -1])      # similarities, best first
            np.testing.assert_allclose(res.distances[:, 0], dist[:, 0], rtol=0.02 if lut_bits == 8 else 1e-3)
    assert recalls["IP"] >= recalls["L2"] - 0.005 and (lut_bits == 8 or recalls["IP"] >= 0.99), recalls
