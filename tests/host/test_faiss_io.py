import faiss
import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.index.builder import BuildConfig, build_ivfpq, encode_chunk
from host.index.faiss_io import read_faiss
from host.index.index_dir import export_index, load_index
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams


@pytest.mark.parametrize("factory, metric", [("OPQ4_16,IVF16,PQ4", "l2"), ("PCAR8,IVF16,PQ4", "cos"), (None, "ip")])
def test_imported_pretransform_index_searches_like_faiss(tiny_data, tmp_path, factory, metric):
    """A faiss IndexPreTransform + IndexIVFPQ with its own ids: same top-10 ids and distances as faiss."""
    base, queries = tiny_data
    ids = np.arange(len(base), dtype=np.int64) * 7 + 1000
    fidx = build_ivfpq(base, BuildConfig(nlist=16, m=4, factory=factory, metric=metric), ids=ids)
    faiss.write_index(fidx, str(tmp_path / "in.faiss"))
    idx = load_index(export_index(read_faiss(tmp_path / "in.faiss"), tmp_path / "out", nshards=2))
    assert idx.d_in == 16 and idx.metric == ("L2" if metric == "l2" else "IP")
    res = LocalSearcher(idx, ScanParams(m=4, k=10), backend="cpu", threads=1).search(queries, 8)
    faiss.extract_index_ivf(fidx).nprobe = 8
    want_d, want_i = fidx.search(queries, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.ids, want_i)])
    assert overlap >= 0.99 and set(res.ids.ravel()) <= set(ids)
    np.testing.assert_allclose(res.distances[:, 0], want_d[:, 0], rtol=1e-3, atol=1e-3)


def test_encode_chunk_is_what_faiss_adds(tiny_data):
    from faiss.contrib.inspect_tools import get_invlist

    base, _ = tiny_data
    fidx = build_ivfpq(base, BuildConfig(nlist=16, m=4, factory="PCAR8,IVF16,PQ4"))
    ivf = faiss.downcast_index(faiss.extract_index_ivf(fidx))
    lists, codes = map(np.concatenate, zip(*(encode_chunk(fidx, base[lo: lo + 700]) for lo in range(0, 3000, 700))))
    for c in range(16):
        got_ids, got_codes = get_invlist(ivf.invlists, c)
        np.testing.assert_array_equal(got_ids, np.flatnonzero(lists == c))
        np.testing.assert_array_equal(got_codes.reshape(len(got_ids), 4), codes[lists == c])
    assert ivf.d == 8 and codes.shape == (3000, 4)


@pytest.mark.parametrize("make, message", [
    (lambda d: faiss.IndexHNSWFlat(d, 8), "unsupported faiss index IndexHNSWFlat"),
    (lambda d: faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, 4), "unsupported faiss index IndexIVFFlat"),
    (lambda d: faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, 4, 4, 4), "4-bit codes"),
    (lambda d: faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, 4, 4, 8, faiss.METRIC_L1), "metric type"),
])
def test_unsupported_faiss_indexes(tmp_path, tiny_data, make, message):
    base, _ = tiny_data
    index = make(16)
    index.train(base)
    faiss.write_index(index, str(tmp_path / "x.faiss"))
    with pytest.raises(InputError, match=message):
        export_index(read_faiss(tmp_path / "x.faiss"), tmp_path / "out", 1)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_binary_and_garbage_files(tmp_path):
    b = faiss.IndexBinaryFlat(64)
    faiss.write_index_binary(b, str(tmp_path / "b.faiss"))
    with pytest.raises(InputError, match="binary faiss index"):
        read_faiss(tmp_path / "b.faiss")
    (tmp_path / "g.faiss").write_bytes(b"garbage!")
    with pytest.raises(InputError, match="not a faiss index"):
        read_faiss(tmp_path / "g.faiss")
    with pytest.raises(InputError, match="no such file"):
        read_faiss(tmp_path / "none.faiss")


def test_queries_of_the_wrong_dimension(tiny_data, tmp_path):
    base, queries = tiny_data
    idx = load_index(export_index(build_ivfpq(base, BuildConfig(nlist=16, m=4, factory="PCAR8,IVF16,PQ4")),
                                  tmp_path / "o", 1))
    with pytest.raises(InputError, match="dimension 8, the index expects 16"):
        idx.prepare_queries(queries[:, :8])
