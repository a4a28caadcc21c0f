"""In-process IVF-PQ search over all shards of an index directory with one backend per shard."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from host.backends import make_backend
from host.index.index_dir import IndexDir
from host.spec import reference
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams


@dataclass(slots=True)
class SearchResult:
    """ids int64[nq, k], distances float32[nq, k] (de-quantized), raw integer dist int64[nq, k], timings in s."""

    ids: np.ndarray
    distances: np.ndarray
    dist: np.ndarray
    timings: dict = field(default_factory=dict)


class LocalSearcher:
    """Coarse search, then every shard's backend, then the merge by (dist, id) — all in this process."""

    def __init__(self, index: IndexDir, params: ScanParams, backend: str = "cpu", **backend_options):
        self.index = index
        self.params = params
        self.backends = [make_backend(backend, index, s, params, **backend_options) for s in index.shards]

    def search(self, queries: np.ndarray, nprobe: int) -> SearchResult:
        queries = self.index.prepare_queries(queries)
        if not 1 <= nprobe <= self.index.nlist:
            raise InputError(f"nprobe must be in 1..{self.index.nlist} (nlist), not {nprobe}")
        t0 = time.perf_counter()
        lists = self.index.coarse_search(queries, nprobe)
        t1 = time.perf_counter()
        parts = [b.search(queries, lists) for b in self.backends]
        t2 = time.perf_counter()
        dist, ids = reference.merge_topk(self.params, np.stack([p.dist for p in parts]), np.stack([p.ids for p in parts]))
        t3 = time.perf_counter()
        distances = self.index.dequantize(queries, lists, dist, parts[0].scale, self.params)
        return SearchResult(ids=ids, distances=distances, dist=dist,
                            timings={"coarse": t1 - t0, "scan": t2 - t1, "merge": t3 - t2})

    def close(self) -> None:
        for b in self.backends:
            b.close()
