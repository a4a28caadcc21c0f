"""The interface every scan backend implements (reference, cpu, verilator, pynq, xrt)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from host.index.datasets import check_vectors
from host.index.index_dir import IndexDir, Shard
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams


@dataclass(slots=True)
class ShardResult:
    """One shard's answer: dist int64[nq, k] (integer, empty slots = empty_dist), ids int64[nq, k]
    (-1 for empty slots) and the per-query table scale float32[nq] (identical on every shard)."""

    dist: np.ndarray
    ids: np.ndarray
    scale: np.ndarray


def check_scan_request(index: IndexDir, queries: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a scan request on ``index``: queries float[nq, d], finite, and list_ids int[nq, nprobe >= 1] naming
    lists of the index. Returns contiguous float32 and int64 copies. Every backend's search and the table
    builders (cpu_backend.build_*_tables) check their input here."""
    queries = check_vectors(queries, index.d, "queries")
    list_ids = np.asarray(list_ids)
    if list_ids.ndim != 2 or list_ids.shape[0] != queries.shape[0]:
        raise InputError(f"list_ids must be [nq={queries.shape[0]}, nprobe], got shape {list_ids.shape}")
    if not np.issubdtype(list_ids.dtype, np.integer):
        raise InputError(f"list_ids must be integers, not {list_ids.dtype}")
    if list_ids.shape[1] < 1:
        raise InputError("nprobe must be >= 1")
    if list_ids.size and (list_ids.min() < 0 or list_ids.max() >= index.nlist):
        bad = int(list_ids[(list_ids < 0) | (list_ids >= index.nlist)][0])
        raise InputError(f"unknown list id {bad}; the index has lists 0..{index.nlist - 1}")
    return queries, np.ascontiguousarray(list_ids, dtype=np.int64)


class ShardBackend(ABC):
    """Scans one shard: builds the quantized tables of each (query, probed list) and keeps the top-K."""

    name = "abstract"

    def __init__(self, index: IndexDir, shard: Shard, params: ScanParams):
        if params.m != index.m:
            raise InputError(f"kernel m={params.m} but the index has m={index.m}")
        if index.nlist > params.max_lists:
            raise InputError(f"the index has {index.nlist} lists, more than list_bits={params.list_bits} can address")
        if shard.ntotal and int(shard.ids.max()) > params.max_id:
            raise InputError(f"ids up to {int(shard.ids.max())} do not fit id_bits={params.id_bits}")
        self.index = index
        self.shard = shard
        self.params = params

    def search(self, queries: np.ndarray, list_ids: np.ndarray) -> ShardResult:
        queries, list_ids = check_scan_request(self.index, queries, list_ids)
        return self._search(queries, list_ids)

    @abstractmethod
    def _search(self, queries: np.ndarray, list_ids: np.ndarray) -> ShardResult:
        """queries float32[nq, d] and list_ids int64[nq, nprobe], already validated."""

    def close(self) -> None:
        """Release whatever the backend holds (simulators, boards)."""
