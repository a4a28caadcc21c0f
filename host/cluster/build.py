"""The distributed index build: train on a sample in one Ray task, encode chunks in parallel Ray tasks,
merge the chunks' inverted lists in input order on the driver.

Each encode task adds its chunk to a copy of the trained index with the chunk's global ids, exactly what
``index.add`` does to those rows on one machine (assignment and PQ encoding are per vector), and
``merge_from`` appends every list in chunk order, so the merged index equals ``build_ivfpq`` of the same
input and seed byte for byte (tests/host/cluster/test_build.py). Hosts of one CPU family are assumed: BLAS
kernels of another instruction set may round a near-tie differently.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host.cluster.ray_env import connect
from host.index.builder import BuildConfig, train_ivfpq
from host.index.datasets import check_vectors, read_vecs
from host.spec.errors import InputError

log = logging.getLogger(__name__)

CHUNK = 65536
"""Vectors per encode task: faiss adds in blocks of this size too."""


def build_ivfpq_ray(source: np.ndarray | str | Path, cfg: BuildConfig, address: str | None = "auto",
                    chunk: int = CHUNK, progress: bool = True):
    """``build_ivfpq(source, cfg)`` on a Ray cluster; ``source`` is float32[n, d] vectors (shipped through the
    object store) or a .fvecs/.bvecs path that every host reads (shared storage or the same copy)."""
    if chunk < 1:
        raise InputError(f"chunk must be >= 1, not {chunk}")
    ray = connect(address)
    if isinstance(source, (str, Path)):
        n, d = read_vecs(source).shape
        src = str(Path(source).resolve())
    else:
        x = check_vectors(source)
        n, d = x.shape
        src = ray.put(x)
    train = ray.remote(_train).options(num_cpus=1)
    encode = ray.remote(_encode).options(num_cpus=1)
    trained = ray.get(train.remote(src, cfg))
    spans = [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]
    pending = {encode.remote(src, trained, lo, hi): i for i, (lo, hi) in enumerate(spans)}
    log.info("encoding %d vectors in %d chunks of %d on the cluster", n, len(spans), chunk)
    done: dict[int, np.ndarray] = {}
    with tqdm(total=n, unit="vec", desc="encode", disable=not progress) as bar:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            done[i] = ray.get(ready[0])
            bar.update(spans[i][1] - spans[i][0])
    return merge_chunks(trained, [done[i] for i in range(len(spans))])


def merge_chunks(trained: np.ndarray, chunks: list[np.ndarray]):
    """The trained index (serialized) with every chunk's lists appended in order."""
    import faiss

    index = faiss.deserialize_index(trained)
    for blob in chunks:
        index.merge_from(faiss.deserialize_index(blob), 0)
    return index


def _vectors(src) -> np.ndarray:
    if isinstance(src, str):
        if not Path(src).is_file():
            raise InputError(f"{src}: no such file on this host; the input must be readable on every host")
        return read_vecs(src)
    return src


def _train(src, cfg: BuildConfig) -> np.ndarray:
    """Ray task: the trained, empty index, serialized."""
    import faiss

    return faiss.serialize_index(train_ivfpq(_vectors(src), cfg))


def _encode(src, trained: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Ray task: rows lo..hi added to a copy of the trained index with ids lo..hi-1, serialized."""
    import faiss

    index = faiss.deserialize_index(trained)
    index.add_with_ids(check_vectors(_vectors(src)[lo:hi]), np.arange(lo, hi, dtype=np.int64))
    return faiss.serialize_index(index)
