import h5py
import numpy as np
import pytest

from host.index.datasets import synthetic_clustered, synthetic_rows
from host.index.sources import SyntheticSource, hdf5_metric, open_vectors, read_npy
from host.spec.errors import InputError


def test_synthetic_row_ranges_equal_the_whole():
    whole = synthetic_clustered(70_000, 8, seed=2, clusters=10)
    np.testing.assert_array_equal(synthetic_rows(65_000, 70_000, 8, seed=2, clusters=10), whole[65_000:])
    np.testing.assert_array_equal(SyntheticSource(70_000, 8, seed=2, clusters=10)[100:66_000], whole[100:66_000])


def test_npy_is_memory_mapped_and_checked(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.save(tmp_path / "x.npy", x)
    got = open_vectors(tmp_path / "x.npy")
    assert isinstance(got, np.memmap) and np.array_equal(got, x)
    for name, bad, msg in (("rank.npy", np.zeros((2, 3, 4), np.float32), "rank 3"),
                           ("dtype.npy", np.zeros((2, 3), np.complex64), "dtype complex64"),
                           ("obj.npy", np.array([[{}]], dtype=object), "not a readable .npy")):
        np.save(tmp_path / name, bad)
        with pytest.raises(InputError, match=msg):
            read_npy(tmp_path / name)


def test_hdf5_roles_and_missing_datasets(tmp_path):
    path = tmp_path / "ann.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=np.ones((10, 4), np.float32))
        f.create_dataset("test", data=np.zeros((3, 4), np.float32))
        f.create_dataset("neighbors", data=np.arange(30, dtype=np.int32).reshape(3, 10))
        f.attrs["distance"] = "angular"
    assert open_vectors(path, "base").shape == (10, 4) and open_vectors(path, "queries").shape == (3, 4)
    assert np.array_equal(np.asarray(open_vectors(path, "gt")), np.arange(30).reshape(3, 10))
    assert hdf5_metric(path) == "cos"
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f.create_dataset("vectors", data=np.ones((2, 2)))
    with pytest.raises(InputError, match="no dataset 'train'.*has \\['vectors'\\]"):
        open_vectors(tmp_path / "bad.hdf5", "base")
    (tmp_path / "not.hdf5").write_bytes(b"nope")
    with pytest.raises(InputError, match="not an HDF5 file"):
        open_vectors(tmp_path / "not.hdf5")
    with pytest.raises(InputError, match="unknown vector file type"):
        open_vectors(tmp_path / "x.csv")
