import json
import shutil

import faiss
import numpy as np
import pytest
from faiss.contrib.inspect_tools import get_invlist

from host.index.index_dir import export_index, load_index
from host.spec.errors import IndexFormatError, InputError


def test_export_round_trip(small_index, small_faiss):
    idx = small_index
    ivf = faiss.extract_index_ivf(small_faiss)
    assert (idx.d, idx.nlist, idx.m, idx.ntotal) == (32, 64, 8, 20_000)
    np.testing.assert_array_equal(idx.centroids, ivf.quantizer.reconstruct_n(0, 64))
    for c in range(idx.nlist):
        ids, codes = get_invlist(ivf.invlists, c)
        parts = [s.list(c) for s in idx.shards]
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ids)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), codes.reshape(-1, 8))
        sizes = [len(p[1]) for p in parts]
        assert max(sizes) - min(sizes) <= 1                       # split evenly
    assert idx.faiss_index().ntotal == 20_000                    # index.faiss loads with plain faiss


@pytest.fixture
def index_copy(small_index, tmp_path):
    out = tmp_path / "idx"
    shutil.copytree(small_index.path, out)
    return out


def test_truncated_file_is_refused(index_copy):
    codes = index_copy / "shard_001" / "codes.u8"
    codes.write_bytes(codes.read_bytes()[:-5])
    with pytest.raises(IndexFormatError, match="truncated"):
        load_index(index_copy)


def test_corrupt_file_is_refused(index_copy):
    f = index_copy / "centroids.f32"
    raw = bytearray(f.read_bytes())
    raw[100] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="checksum"):
        load_index(index_copy)


def test_other_version_is_refused(index_copy):
    man = json.loads((index_copy / "manifest.json").read_text())
    man["version"] = 99
    (index_copy / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(IndexFormatError, match="version 99"):
        load_index(index_copy)


@pytest.mark.parametrize("damage", ["missing_manifest", "bad_json", "missing_file", "bad_field"])
def test_damaged_directory_is_refused(index_copy, damage):
    man_path = index_copy / "manifest.json"
    if damage == "missing_manifest":
        man_path.unlink()
    elif damage == "bad_json":
        man_path.write_text("{not json")
    elif damage == "missing_file":
        (index_copy / "shard_002" / "ids.i64").unlink()
    else:
        man = json.loads(man_path.read_text())
        del man["nlist"]
        man_path.write_text(json.dumps(man))
    with pytest.raises(IndexFormatError):
        load_index(index_copy)


def test_unknown_shard_and_nprobe(small_index):
    with pytest.raises(InputError, match="shard 7"):
        load_index(small_index.path, shards=[7])
    with pytest.raises(InputError, match="nprobe"):
        small_index.coarse_search(np.zeros((1, 32), np.float32), 65)
    with pytest.raises(InputError, match="list id"):
        small_index.shards[0].list(64)


def test_export_refuses_other_index_types(tmp_path):
    flat = faiss.IndexIVFFlat(faiss.IndexFlatL2(8), 8, 2)
    with pytest.raises(InputError, match="IndexIVFPQ"):
        export_index(flat, tmp_path / "x", 1)


def test_coarse_search_does_not_depend_on_the_batch(small_index):
    """Midpoints of centroid pairs are exact ties; faiss's batched (BLAS) and single-query paths break
    them differently, the index directory's coarse search never does."""
    c = small_index.centroids
    rng = np.random.default_rng(0)
    pairs = [rng.choice(len(c), 2, replace=False) for _ in range(500)]
    q = np.array([(c[i] + c[j]) / 2 for i, j in pairs], np.float32)
    for nprobe in (1, 3, small_index.nlist):
        batched = small_index.coarse_search(q, nprobe)
        assert all((small_index.coarse_search(q[k:k + 1], nprobe) == batched[k]).all() for k in range(0, 500, 7))
        assert (small_index.coarse_search(q[100:137], nprobe) == batched[100:137]).all()
        d = ((c[batched] - q[:, None, :]) ** 2).sum(-1)
        assert (np.diff(d, axis=1) >= -1e-3 * d[:, 1:]).all()            # nearest first
    exact = ((c[None].astype(np.float64) - q[:, None]) ** 2).sum(-1)
    chosen = exact[np.arange(500), small_index.coarse_search(q, 1)[:, 0]]
    assert (chosen <= exact.min(1) * (1 + 1e-5)).all()                   # the nearest, up to rounding
