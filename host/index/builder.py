"""Train and fill faiss IVF-PQ indexes (8-bit codes, residual encoding; L2, inner product or cosine).

The public steps, shared by the in-memory build, the out-of-core build (host.index.stream_build) and any
distributed build: ``new_index`` (factory string -> untrained index), ``train_index`` (on a sample),
``encode_chunk`` (a chunk of vectors -> list numbers and codes, exactly what faiss's ``add`` stores).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from host.index import faiss_io
from host.index.datasets import check_vectors
from host.spec.errors import InputError

log = logging.getLogger(__name__)

METRICS = {"l2": "L2", "ip": "IP", "cos": "IP"}
"""User metric -> kernel metric; cosine is inner product on L2-normalized vectors."""


@dataclass(slots=True)
class BuildConfig:
    """How to build an IVF-PQ index.

    ``factory``: a faiss factory string such as "OPQ16_64,IVF4096,PQ16" (default "IVF{nlist},PQ{m}");
    ``metric``: l2, ip or cos (cos prepends an L2 normalization); ``train_size`` caps the training sample
    (0: all vectors); ``chunk_size``: vectors per chunk of the out-of-core build."""

    nlist: int = 1024
    m: int = 16
    seed: int = 0
    train_size: int = 100_000
    threads: int = 0
    factory: str | None = None
    metric: str = "l2"
    chunk_size: int = 1 << 18

    def __post_init__(self):
        if self.nlist < 1:
            raise InputError(f"nlist must be >= 1, not {self.nlist}")
        if not 4 <= self.m <= 64:
            raise InputError(f"m must be in 4..64 (the kernel's range), not {self.m}")
        if self.train_size < 0:
            raise InputError(f"train_size must be >= 0, not {self.train_size}")
        if self.metric not in METRICS:
            raise InputError(f"metric must be one of {sorted(METRICS)}, not {self.metric!r}")
        if self.chunk_size < 1:
            raise InputError(f"chunk_size must be >= 1, not {self.chunk_size}")

    def factory_string(self) -> str:
        spec = self.factory or f"IVF{self.nlist},PQ{self.m}"
        return f"L2norm,{spec}" if self.metric == "cos" else spec


def new_index(d: int, cfg: BuildConfig):
    """An untrained faiss index for cfg (factory string and metric), checked to be one anole serves."""
    import faiss

    spec = cfg.factory_string()
    metric = faiss.METRIC_INNER_PRODUCT if METRICS[cfg.metric] == "IP" else faiss.METRIC_L2
    try:
        index = faiss.index_factory(d, spec, metric)
    except RuntimeError as e:
        raise InputError(f"faiss factory {spec!r} for d={d}: {str(e).strip().splitlines()[-1]}") from None
    ivf, _, _ = faiss_io.unwrap(index, trained=False)
    if not 4 <= ivf.pq.M <= 64:
        raise InputError(f"PQ{ivf.pq.M}: m must be in 4..64 (the kernel's range)")
    ivf.cp.seed = cfg.seed
    ivf.pq.cp.seed = cfg.seed
    ivf.do_polysemous_training = False          # the factory turns it on; anole never uses it (and it is slow)
    return index


def train_index(sample: np.ndarray, cfg: BuildConfig):
    """A trained, empty faiss index from a training sample float32[n, d] (all of it is used)."""
    import faiss

    x = check_vectors(sample, what="training vectors")
    n, d = x.shape
    if cfg.factory is None and d % cfg.m:
        raise InputError(f"dimension {d} is not divisible by m={cfg.m}; pick m among {_divisors(d)}")
    index = new_index(d, cfg)
    ivf, _, _ = faiss_io.unwrap(index, trained=False)
    min_train = max(ivf.nlist, 256)
    if n < min_train:
        raise InputError(f"{n} vectors are too few to train nlist={ivf.nlist} lists and 256 PQ centroids; "
                         f"need at least {min_train}")
    if cfg.threads:
        faiss.omp_set_num_threads(cfg.threads)
    if n < 39 * 256:       # faiss would print the same warning once per sub-quantizer
        log.warning("only %d training vectors for 256 PQ centroids per sub-quantizer (faiss advises %d); "
                    "codebooks will be coarse", n, 39 * 256)
        ivf.pq.cp.min_points_per_centroid = 1
    log.info("training %s (%s) on %d vectors of dim %d", cfg.factory_string(), cfg.metric, n, d)
    index.train(x)
    return index


def training_sample(src, cfg: BuildConfig) -> np.ndarray:
    """float32[min(n, train_size), d]: rows of ``src`` (array-like, host.index.sources) drawn without
    replacement with cfg.seed, read one chunk at a time."""
    n = src.shape[0]
    if not cfg.train_size or n <= cfg.train_size:
        return np.concatenate([np.asarray(src[lo: lo + cfg.chunk_size], np.float32) for lo in range(0, n, cfg.chunk_size)])
    pick = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.train_size, replace=False))
    parts = []
    for lo in range(0, n, cfg.chunk_size):
        sel = pick[(pick >= lo) & (pick < lo + cfg.chunk_size)]
        if len(sel):
            parts.append(np.asarray(src[lo: lo + cfg.chunk_size], np.float32)[sel - lo])
    return np.concatenate(parts)


def encode_chunk(index, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(list numbers int64[n], codes uint8[n, m]) of vectors float32[n, d_in] for a trained index: the
    pre-transform, the coarse assignment and the residual PQ encoding, exactly as faiss's ``add``."""
    import faiss

    ivf, _, _ = faiss_io.unwrap(index)
    x = check_vectors(vectors, faiss.downcast_index(index).d, "vectors")
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexPreTransform):
        for i in range(top.chain.size()):
            x = np.ascontiguousarray(faiss.downcast_VectorTransform(top.chain.at(i)).apply(x), dtype=np.float32)
    lists = ivf.quantizer.assign(x, 1).reshape(-1).astype(np.int64)
    codes = np.empty((len(x), ivf.code_size), np.uint8)
    ivf.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes))
    return lists, codes


def build_ivfpq(vectors: np.ndarray, cfg: BuildConfig, ids: np.ndarray | None = None):
    """Train and fill a faiss index (IndexIVFPQ, behind an IndexPreTransform when the factory or cos asks)
    on float32[n, d] vectors held in memory (ids default to 0..n-1)."""
    x = check_vectors(vectors)
    n = len(x)
    rng = np.random.default_rng(cfg.seed)
    train = x if not cfg.train_size or n <= cfg.train_size else x[np.sort(rng.choice(n, cfg.train_size, replace=False))]
    index = train_index(train, cfg)
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


def _divisors(d: int) -> list[int]:
    return [m for m in range(4, 65) if d % m == 0]
