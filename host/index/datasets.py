"""Vector datasets: .fvecs/.ivecs/.bvecs (memory-mapped), synthetic clustered data, ground truth, recall."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from host.spec.errors import InputError

_VECS = {".fvecs": (np.float32, 4), ".ivecs": (np.int32, 4), ".bvecs": (np.uint8, 1)}


def read_vecs(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Read a TEXMEX .fvecs/.ivecs/.bvecs file: each row is int32 dim then dim components.

    Returns float32/int32/uint8[n, dim] (a read-only memory map view when mmap=True).
    """
    path = Path(path)
    if path.suffix not in _VECS:
        raise InputError(f"{path}: unknown vector file type {path.suffix!r}; expected one of {sorted(_VECS)}")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    dtype, width = _VECS[path.suffix]
    raw = np.memmap(path, dtype=np.uint8, mode="r") if mmap else np.fromfile(path, dtype=np.uint8)
    if raw.size < 4:
        raise InputError(f"{path}: empty or truncated (size {raw.size} bytes)")
    dim = int(raw[:4].view(np.int32)[0])
    if dim <= 0 or dim > 1 << 20:
        raise InputError(f"{path}: implausible dimension {dim} in the first header")
    row = 4 + dim * width
    if raw.size % row:
        raise InputError(f"{path}: size {raw.size} is not a multiple of the row size {row} (dim {dim}); truncated?")
    rows = raw.reshape(-1, row)
    heads = rows[:, :4].view(np.int32)[:, 0] if rows.shape[0] <= 1 << 22 else rows[:1024, :4].view(np.int32)[:, 0]
    if np.any(heads != dim):
        raise InputError(f"{path}: rows have differing dimensions (first {dim})")
    return rows[:, 4:].view(dtype)


def write_vecs(path: str | os.PathLike, data: np.ndarray) -> None:
    """Write float32/int32/uint8[n, dim] as .fvecs/.ivecs/.bvecs (chosen by the suffix)."""
    path = Path(path)
    if path.suffix not in _VECS:
        raise InputError(f"{path}: unknown vector file type {path.suffix!r}")
    dtype, width = _VECS[path.suffix]
    data = np.ascontiguousarray(data, dtype=dtype)
    if data.ndim != 2:
        raise InputError(f"expected a 2-d array, got shape {data.shape}")
    n, dim = data.shape
    out = np.empty((n, 4 + dim * width), dtype=np.uint8)
    out[:, :4] = np.full((n, 1), dim, dtype=np.int32).view(np.uint8)
    out[:, 4:] = data.view(np.uint8).reshape(n, dim * width)
    out.tofile(path)


SYNTH_BLOCK = 1 << 16
"""Synthetic rows are drawn in blocks of this many, each from its own seed, so any row range can be made alone."""


def synthetic_clustered(n: int, dim: int, seed: int = 0, clusters: int = 1000,
                        spread: float = 0.35, stream: int = 0) -> np.ndarray:
    """Gaussian mixture float32[n, dim]: ``clusters`` random centres, points at ``spread`` around them.

    The centres depend on ``seed`` only; the points on (seed, stream), so stream=1 draws queries from the
    same distribution as a base set drawn with stream=0. Rows 0..n-1 of ``synthetic_rows``."""
    return synthetic_rows(0, n, dim, seed, clusters, spread, stream)


def synthetic_rows(lo: int, hi: int, dim: int, seed: int = 0, clusters: int = 1000,
                   spread: float = 0.35, stream: int = 0) -> np.ndarray:
    """Rows lo..hi-1 of the synthetic data set (seed, stream): float32[hi - lo, dim], made block by block
    (``SYNTH_BLOCK`` rows from the generator seeded [seed, stream, block]) without making the rows before lo."""
    if hi <= lo or lo < 0 or dim < 1 or clusters < 1:
        raise InputError(f"rows need 0 <= lo < hi and dim, clusters >= 1, not lo={lo} hi={hi} dim={dim} "
                         f"clusters={clusters}")
    centres = np.random.default_rng(seed).standard_normal((clusters, dim), dtype=np.float32)
    out = np.empty((hi - lo, dim), dtype=np.float32)
    for b in range(lo // SYNTH_BLOCK, (hi - 1) // SYNTH_BLOCK + 1):
        rng = np.random.default_rng([seed, stream, b])
        which = rng.integers(0, clusters, SYNTH_BLOCK)
        a, z = max(lo, b * SYNTH_BLOCK), min(hi, (b + 1) * SYNTH_BLOCK)
        noise = rng.standard_normal((z - b * SYNTH_BLOCK, dim), dtype=np.float32)[a - b * SYNTH_BLOCK:]
        out[a - lo: z - lo] = centres[which[a - b * SYNTH_BLOCK: z - b * SYNTH_BLOCK]] + spread * noise
    return out


def check_vectors(x: np.ndarray, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """Validate float vectors at an API boundary: 2-d, finite, the expected dim. Returns float32, contiguous."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise InputError(f"{what} must be a 2-d array [n, d], got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"{what} have dimension {x.shape[1]}, the index expects {dim}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{what} must be numeric, not {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise InputError(f"{what} contain non-finite values (first at row {bad})")
    return x


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int, metric: str = "l2") -> np.ndarray:
    """Exact k nearest neighbours int64[nq, k] under metric l2 (faiss IndexFlatL2), ip (IndexFlatIP) or cos
    (IndexFlatIP on L2-normalized base and queries)."""
    import faiss

    metric = metric.lower()
    if metric == "cos":
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), np.float32(1e-30))
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), np.float32(1e-30))
    index = (faiss.IndexFlatL2 if metric == "l2" else faiss.IndexFlatIP)(base.shape[1])
    index.add(np.ascontiguousarray(base, dtype=np.float32))
    _, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return ids


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean fraction of the true top-k ids found in the first k results (found int[nq, >=k], truth int[nq, >=k])."""
    if found.shape[0] != truth.shape[0]:
        raise InputError(f"{found.shape[0]} result rows but {truth.shape[0]} ground-truth rows")
    if found.shape[1] < k or truth.shape[1] < k:
        raise InputError(f"recall@{k} needs at least {k} columns (results {found.shape[1]}, truth {truth.shape[1]})")
    hits = sum(len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth))
    return hits / (k * found.shape[0])
