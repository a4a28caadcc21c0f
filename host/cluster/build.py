"""The distributed index build: the out-of-core build of host.index.stream_build with its two heavy steps on a
Ray cluster: one task trains on the sample, parallel tasks encode the chunks; the driver stores the chunks
and writes the shards exactly as a single-machine build does.

Assignment and PQ encoding are per vector (``builder.encode_chunk`` equals faiss's ``add``), so the index
directory is byte-identical to ``anole index build`` of the same input and seed (tests/host/cluster/
test_build.py). Hosts of one CPU family are assumed: BLAS kernels of another instruction set may round a
near-tie differently.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from host.cluster.ray_env import connect
from host.index import stream_build
from host.index.builder import BuildConfig, encode_chunk, train_index
from host.index.sources import open_vectors
from host.spec.errors import InputError

log = logging.getLogger(__name__)


def build_index_ray(src, cfg: BuildConfig, out: str | Path, nshards: int, source: dict | None = None,
                    address: str | None = "auto") -> Path:
    """``stream_build.build_index`` with training and encoding in Ray tasks. ``src`` is a path every host can
    read (.npy, .fvecs/.bvecs, .hdf5: shared storage or the same copy) or an array-like host.index source
    (shipped through the object store)."""
    ray = connect(address)
    rows = open_vectors(src, "base") if isinstance(src, (str, Path)) else src
    ref = str(Path(src).resolve()) if isinstance(src, (str, Path)) else ray.put(rows)

    def train(sample: np.ndarray, cfg: BuildConfig):
        import faiss

        task = ray.remote(_train).options(num_cpus=1)
        return faiss.deserialize_index(ray.get(task.remote(sample, cfg)))

    def encode(index, spans):
        import faiss

        trained = ray.put(faiss.serialize_index(index))
        task = ray.remote(_encode).options(num_cpus=1)
        pending = {task.remote(ref, trained, lo, hi): i for i, lo, hi in spans}
        log.info("encoding %d chunks on the cluster", len(spans))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready[0])
            yield (i, *ray.get(ready[0]))

    return stream_build.build_index(rows, cfg, out, nshards, source, encode=encode, train=train)


def _train(sample: np.ndarray, cfg: BuildConfig) -> np.ndarray:
    """Ray task: the trained, empty index, serialized."""
    import faiss

    return faiss.serialize_index(train_index(sample, cfg))


def _encode(src, trained: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Ray task: (lists, codes) of rows lo..hi of ``src`` (a path read on this host, or the rows' source)."""
    import faiss

    if isinstance(src, str):
        if not Path(src).is_file():
            raise InputError(f"{src}: no such file on this host; the input must be readable on every host")
        src = open_vectors(src, "base")
    return encode_chunk(faiss.deserialize_index(trained), np.asarray(src[lo:hi], np.float32))
