import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.index.datasets import check_vectors, ground_truth, read_vecs, recall_at_k, synthetic_clustered, write_vecs
from host.spec.errors import InputError


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), dim=st.integers(1, 40), kind=st.sampled_from([".fvecs", ".ivecs", ".bvecs"]),
       seed=st.integers(0, 1000))
def test_vecs_round_trip(tmp_path_factory, n, dim, kind, seed):
    rng = np.random.default_rng(seed)
    data = {".fvecs": rng.standard_normal((n, dim)).astype(np.float32),
            ".ivecs": rng.integers(-5, 1 << 20, (n, dim)).astype(np.int32),
            ".bvecs": rng.integers(0, 256, (n, dim)).astype(np.uint8)}[kind]
    path = tmp_path_factory.mktemp("v") / f"x{kind}"
    write_vecs(path, data)
    np.testing.assert_array_equal(read_vecs(path), data)
    np.testing.assert_array_equal(read_vecs(path, mmap=False), data)


def test_bad_vector_files(tmp_path):
    f = tmp_path / "x.fvecs"
    write_vecs(f, np.ones((3, 4), np.float32))
    f.write_bytes(f.read_bytes()[:-2])
    with pytest.raises(InputError, match="truncated"):
        read_vecs(f)
    with pytest.raises(InputError, match="no such file"):
        read_vecs(tmp_path / "missing.fvecs")
    with pytest.raises(InputError, match="unknown vector file type"):
        read_vecs(tmp_path / "x.npy")
    g = tmp_path / "y.ivecs"
    g.write_bytes(np.array([2, 1, 2, 3, 1, 2], np.int32).tobytes())       # rows of dim 2 then dim 3
    with pytest.raises(InputError):
        read_vecs(g)


def test_check_vectors_names_the_problem():
    with pytest.raises(InputError, match="dimension 3"):
        check_vectors(np.zeros((2, 3)), 4)
    x = np.zeros((3, 4))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="row 2"):
        check_vectors(x, 4)
    assert check_vectors(np.zeros(4), 4).shape == (1, 4)


def test_synthetic_is_deterministic_and_streams_differ():
    a = synthetic_clustered(100, 8, seed=3, clusters=5)
    np.testing.assert_array_equal(a, synthetic_clustered(100, 8, seed=3, clusters=5))
    q = synthetic_clustered(100, 8, seed=3, clusters=5, stream=1)
    assert not np.array_equal(a, q)
    # same centres: every query lies near some base point's cluster
    assert np.sqrt(((q[:, None] - a[None]) ** 2).sum(-1)).min(1).max() < 3.0


def test_ground_truth_and_recall():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 8)).astype(np.float32)
    q = base[:20] + 1e-4
    gt = ground_truth(base, q, 5)
    assert (gt[:, 0] == np.arange(20)).all()
    assert recall_at_k(gt, gt, 5) == 1.0
    shifted = gt.copy()
    shifted[:, 0] = -1
    assert recall_at_k(shifted, gt, 5) == pytest.approx(0.8)
