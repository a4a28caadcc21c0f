"""Build a faiss IndexIVFPQ (L2, residual encoding, 8-bit codes) from vectors."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from host.index.datasets import check_vectors
from host.spec.errors import InputError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BuildConfig:
    """How to build an IVF-PQ index. ``train_size`` caps the training sample (0: all vectors)."""

    nlist: int = 1024
    m: int = 16
    seed: int = 0
    train_size: int = 100_000
    threads: int = 0

    def __post_init__(self):
        if self.nlist < 1:
            raise InputError(f"nlist must be >= 1, not {self.nlist}")
        if not 4 <= self.m <= 64:
            raise InputError(f"m must be in 4..64 (the kernel's range), not {self.m}")
        if self.train_size < 0:
            raise InputError(f"train_size must be >= 0, not {self.train_size}")


def build_ivfpq(vectors: np.ndarray, cfg: BuildConfig, ids: np.ndarray | None = None):
    """Train and fill a faiss.IndexIVFPQ on float32[n, d] vectors (ids default to 0..n-1)."""
    x = check_vectors(vectors)
    index = train_ivfpq(x, cfg)
    n = len(x)
    if ids is None:
        index.add(x)
    else:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if ids.shape != (n,):
            raise InputError(f"ids must be int64[{n}], got shape {ids.shape}")
        if ids.min(initial=0) < 0 or len(np.unique(ids)) != n:
            raise InputError("ids must be unique and non-negative")
        index.add_with_ids(x, ids)
    return index


def train_ivfpq(vectors: np.ndarray, cfg: BuildConfig):
    """A trained, empty faiss.IndexIVFPQ: coarse centroids and PQ codebooks from a sample of float32[n, d]
    vectors (``cfg.train_size`` rows drawn with ``cfg.seed``)."""
    import faiss

    x = check_vectors(vectors)
    n, d = x.shape
    if d % cfg.m:
        raise InputError(f"dimension {d} is not divisible by m={cfg.m}; pick m among {_divisors(d)}")
    min_train = max(cfg.nlist, 256)
    if n < min_train:
        raise InputError(f"{n} vectors are too few to train nlist={cfg.nlist} lists and 256 PQ centroids; "
                         f"need at least {min_train}")
    if cfg.threads:
        faiss.omp_set_num_threads(cfg.threads)
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFPQ(quantizer, d, cfg.nlist, cfg.m, 8)
    index.cp.seed = cfg.seed
    index.pq.cp.seed = cfg.seed
    if n < 39 * 256:       # faiss would print the same warning once per sub-quantizer
        log.warning("only %d training vectors for 256 PQ centroids per sub-quantizer (faiss advises %d); "
                    "codebooks will be coarse", n, 39 * 256)
        index.pq.cp.min_points_per_centroid = 1
    rng = np.random.default_rng(cfg.seed)
    train = x if not cfg.train_size or n <= cfg.train_size else x[np.sort(rng.choice(n, cfg.train_size, replace=False))]
    log.info("training IVF%d,PQ%d on %d vectors of dim %d", cfg.nlist, cfg.m, len(train), d)
    index.train(train)
    return index


def _divisors(d: int) -> list[int]:
    return [m for m in range(4, 65) if d % m == 0]
