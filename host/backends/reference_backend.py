"""The integer reference model as a backend: slow, plain numpy, the definition of the result."""
from __future__ import annotations

import numpy as np

from host.backends.base import ShardBackend, ShardResult
from host.spec import reference


class ReferenceBackend(ShardBackend):
    name = "reference"

    def _search(self, queries, list_ids) -> ShardResult:
        p = self.params
        tables = reference.float_tables(queries, list_ids, self.index.centroids, self.index.codebooks,
                                        self.index.lterms, self.index.metric)
        qtables, scale = reference.quantize_tables(tables, p.lut_bits)
        nq = len(queries)
        dist = np.empty((nq, p.k), np.int64)
        ids = np.empty((nq, p.k), np.int64)
        for q in range(nq):
            lists = [self.shard.list(int(c)) for c in list_ids[q]]
            dist[q], ids[q] = reference.scan_query(p, qtables[q], lists)
        return ShardResult(dist=dist, ids=ids, scale=scale)
