"""Vector sources read chunk by chunk: .npy (memory-mapped), .fvecs/.bvecs/.ivecs, ann-benchmarks .hdf5, synthetic.

Every source is array-like: ``shape`` (n, d), ``dtype``, and ``src[lo:hi]`` returning those rows, so a
build never holds more than one chunk. ann-benchmarks files hold ``train`` (base), ``test`` (queries),
``neighbors`` (ground-truth ids) and ``distances``, and a ``distance`` attribute (euclidean, angular, dot).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.index.datasets import read_vecs, synthetic_rows
from host.spec.errors import InputError

NPY_DTYPES = (np.float32, np.float64, np.float16, np.uint8, np.int8)
HDF5_ROLES = {"base": "train", "queries": "test", "gt": "neighbors", "distances": "distances"}
HDF5_METRICS = {"euclidean": "l2", "angular": "cos", "dot": "ip", "ip": "ip"}


@dataclass(frozen=True, slots=True)
class SyntheticSource:
    """Rows of host.index.datasets.synthetic_rows, made on demand (never all at once)."""

    n: int
    dim: int
    seed: int = 0
    clusters: int = 1000
    stream: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.dim)

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, rows: slice) -> np.ndarray:
        lo, hi, step = rows.indices(self.n)
        if step != 1:
            raise InputError("synthetic sources read contiguous row ranges only")
        return synthetic_rows(lo, hi, self.dim, self.seed, self.clusters, stream=self.stream)


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A .npy of a 2-d real array, memory-mapped read-only (float32/64/16, uint8 or int8)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: not a readable .npy file ({e})") from None
    if x.ndim != 2:
        raise InputError(f"{path}: a .npy of rank {x.ndim} (shape {x.shape}); expected a 2-d array [n, d]")
    if x.dtype.type not in NPY_DTYPES:
        raise InputError(f"{path}: dtype {x.dtype}; expected one of "
                         f"{', '.join(np.dtype(t).name for t in NPY_DTYPES)}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"{path}: empty array of shape {x.shape}")
    return x


def read_hdf5(path: str | os.PathLike, role: str):
    """The h5py dataset of an ann-benchmarks file for ``role`` (base, queries, gt, distances), unread."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not an HDF5 file ({e})") from None
    name = HDF5_ROLES[role]
    if name not in f:
        have = sorted(f.keys())
        f.close()
        raise InputError(f"{path}: no dataset {name!r} (ann-benchmarks files hold train, test, neighbors, "
                         f"distances); this one has {have}")
    ds = f[name]
    if ds.ndim != 2 or ds.dtype.kind not in "fiu":
        raise InputError(f"{path}: dataset {name!r} is {ds.dtype}{list(ds.shape)}; expected a 2-d numeric array")
    return ds


def hdf5_metric(path: str | os.PathLike) -> str | None:
    """The metric (l2, ip, cos) an ann-benchmarks file declares in its ``distance`` attribute, if any."""
    import h5py

    with h5py.File(path, "r") as f:
        dist = f.attrs.get("distance")
    return HDF5_METRICS.get(str(dist).lower()) if dist is not None else None


def open_vectors(path: str | os.PathLike, role: str = "base"):
    """An array-like source of ``role`` vectors (base, queries or gt) from a .npy/.fvecs/.bvecs/.ivecs/.hdf5."""
    suffix = Path(path).suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return read_hdf5(path, role)
    if suffix == ".npy":
        return read_npy(path)
    if suffix in (".fvecs", ".bvecs", ".ivecs"):
        return read_vecs(path)
    raise InputError(f"{path}: unknown vector file type {suffix!r}; expected .npy, .fvecs, .bvecs, .ivecs or .hdf5")


def chunks(src, chunk: int, lo: int = 0):
    """(start, float32[rows, d]) for consecutive row ranges of ``chunk`` rows from ``lo``."""
    n = src.shape[0]
    for start in range(lo, n, chunk):
        yield start, np.asarray(src[start: min(n, start + chunk)], dtype=np.float32)
