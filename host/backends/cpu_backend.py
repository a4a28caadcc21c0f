"""The multi-threaded CPU scan backend: numba kernels, bit-exact with the integer reference model."""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

import numba
import numpy as np

from host.backends import cpu_kernels
from host.backends.base import ShardBackend, ShardResult, check_scan_request
from host.index.index_dir import IndexDir, Shard
from host.spec import reference
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)


def resolve_threads(threads: int) -> int:
    """Threads to use for ``threads`` (0: all cores), capped at what numba was started with."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise InputError(f"threads must be an int >= 0 (0: all cores), not {threads!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    want = threads or os.cpu_count() or 1
    if want > limit:
        log.warning("%d threads asked, numba was started with %d (NUMBA_NUM_THREADS); using %d", want, limit, limit)
    return min(want, limit)


@contextmanager
def numba_threads(threads: int):
    """Run numba parallel kernels on ``threads`` threads with dynamic scheduling, then restore the settings."""
    prev = numba.get_num_threads()
    numba.set_num_threads(threads)
    prev_chunk = numba.set_parallel_chunksize(1)
    try:
        yield
    finally:
        numba.set_parallel_chunksize(prev_chunk)
        numba.set_num_threads(prev)


def transposed_codebooks(codebooks: np.ndarray) -> np.ndarray:
    """float32[m, 256, dsub] -> float32[m, dsub, 256], so table sums vectorize across the 256 entries."""
    return np.ascontiguousarray(codebooks.transpose(0, 2, 1), dtype=np.float32)


def build_float_tables(index: IndexDir, queries: np.ndarray, list_ids: np.ndarray) -> np.ndarray:
    """T float32[nq, nprobe, m, 256], bit-exact with reference.float_tables(..., index.lterms, index.metric)."""
    queries, list_ids = check_scan_request(index, queries, list_ids)
    out = np.empty((*list_ids.shape, index.m, 256), np.float32)
    cpu_kernels.build_float_tables(queries, list_ids, index.centroids, index.lterms,
                                   transposed_codebooks(index.codebooks), out, index.metric == "IP")
    return out


def build_quantized_tables(index: IndexDir, queries: np.ndarray, list_ids: np.ndarray, lut_bits: int,
                           threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(Q uint16[nq, nprobe, m, 256], s float32[nq]) for queries float32[nq, d], list_ids int[nq, nprobe].

    Bit-exact with reference.quantize_tables(reference.float_tables(..., index.lterms, index.metric), lut_bits), on
    ``threads`` threads (0: all cores). For the backends that stream tables into a kernel (verilator, pynq, xrt)."""
    if isinstance(lut_bits, bool) or not isinstance(lut_bits, int) or not 8 <= lut_bits <= 16:
        raise InputError(f"lut_bits must be in 8..16, not {lut_bits!r}")
    queries, list_ids = check_scan_request(index, queries, list_ids)
    qt = np.empty((*list_ids.shape, index.m, 256), np.uint16)
    scale = np.empty(len(queries), np.float32)
    with numba_threads(resolve_threads(threads)):
        cpu_kernels.build_tables(queries, list_ids, index.centroids, index.lterms,
                                 transposed_codebooks(index.codebooks), lut_bits, qt, scale, index.metric == "IP")
    return qt, scale


def _readonly(a: np.ndarray, dtype) -> np.ndarray:
    """A C-contiguous read-only ndarray view (a copy only if needed): one numba signature for mmaps and arrays."""
    a = np.ascontiguousarray(a, dtype=dtype).view(np.ndarray)
    a.flags.writeable = False
    return a


class CpuBackend(ShardBackend):
    """Scans one shard on ``threads`` CPU threads (0: all cores).

    Per query: D (m*256*dsub flops), then per probed list A (d flops) + the precomputed B into float tables,
    quantized over all the query's tables, then an ADC scan of each list with uint16 tables (codes read as
    uint64 words when m % 8 == 0) into a (dist, id) max-heap with a threshold test. Queries are split in
    blocks over threads; every query's heap lives in one thread, so there are no races and no merge.
    """

    name = "cpu"

    def __init__(self, index: IndexDir, shard: Shard, params: ScanParams, threads: int = 0, block: int = 4):
        super().__init__(index, shard, params)
        self.threads = resolve_threads(threads)
        if block < 1:
            raise InputError(f"block must be >= 1, not {block!r}")
        self.block = block
        self._centroids = _readonly(index.centroids, np.float32)
        self._cbt = _readonly(transposed_codebooks(index.codebooks), np.float32)
        self._lterms = _readonly(index.lterms, np.float32)
        self._offsets = _readonly(shard.offsets, np.int64)
        self._codes = _readonly(shard.codes, np.uint8)
        self._ids = _readonly(shard.ids, np.int64)      # codes and ids stay memory-mapped: no copy of the shard
        self._ip = index.metric == "IP"
        n, m = self._codes.shape
        words = np.zeros((0, 0), np.uint64)
        if m % 8 == 0 and n:
            words = self._codes.reshape(-1).view(np.uint64).reshape(n, m // 8)
        self._codes64 = _readonly(words, np.uint64)
        self._words = tuple(range(words.shape[1]))

    def _search(self, queries: np.ndarray, list_ids: np.ndarray) -> ShardResult:
        p = self.params
        nq = len(queries)
        dist = np.empty((nq, p.k), np.int64)
        ids = np.empty((nq, p.k), np.int64)
        scale = np.empty(nq, np.float32)
        t0 = time.perf_counter()
        with numba_threads(self.threads):
            cpu_kernels.search(queries, list_ids, self._centroids, self._lterms, self._cbt, self._offsets,
                               self._codes, self._codes64, self._words, self._ids, p.lut_bits,
                               reference.empty_dist(p), self.block, dist, ids, scale, self._ip)
        log.debug("cpu scan of %d queries x %d lists in %.3f s", nq, list_ids.shape[1], time.perf_counter() - t0)
        return ShardResult(dist=dist, ids=ids, scale=scale)
