"""Drives the scan kernel's compute units through any `Device`: buffer layout, launches, top-K merge.

With N compute units the shard's lists are split over the units (each holds its lists in its own memory
banks); a batch runs on all units at once and their top-K lists are merged by (dist, id), which gives
exactly the single-unit answer. Nothing here knows whether a unit is on a PYNQ board, an Alveo card or a
software board.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from host.board.device import Buffer, Device
from host.index.index_dir import Shard
from host.spec import reference
from host.spec.errors import BoardError, InputError
from host.spec.layout import DESC_BYTES, RESULT_BYTES, KernelLayout
from host.spec.scan_params import KSUB, ScanParams

log = logging.getLogger(__name__)


def split_lists(sizes: np.ndarray, units: int) -> np.ndarray:
    """Owner unit int64[nlist] of each list: largest lists first, each to the unit holding fewest codes."""
    owner = np.zeros(len(sizes), np.int64)
    load = np.zeros(units, np.int64)
    for c in np.argsort(-np.asarray(sizes), kind="stable"):
        u = int(np.argmin(load))
        owner[c] = u
        load[u] += sizes[c]
    return owner


def sub_shard(shard: Shard, lists: np.ndarray) -> Shard:
    """The lists ``lists`` of ``shard`` (in that order) followed by one empty list (the padding probe)."""
    sizes = shard.list_sizes()[lists]
    if np.array_equal(lists, np.arange(shard.nlist)):
        return Shard(offsets=np.append(shard.offsets, shard.offsets[-1]), codes=shard.codes, ids=shard.ids)
    rows = np.concatenate([np.arange(shard.offsets[c], shard.offsets[c + 1]) for c in lists] or [np.zeros(0, int)])
    offsets = np.concatenate([[0], np.cumsum(sizes), [sizes.sum()]]).astype(np.int64)
    return Shard(offsets=offsets, codes=shard.codes[rows], ids=np.asarray(shard.ids)[rows])


class ComputeUnit:
    """One compute unit with its part of the shard resident; `scan` runs one launch."""

    def __init__(self, device: Device, layout: KernelLayout, shard: Shard, timeout_s: float):
        self.device, self.layout, self.timeout_s = device, layout, timeout_s
        codes, ids, self.first_beat = layout.shard_image(shard)
        self.list_sizes = shard.list_sizes().astype(np.int64)
        self.codes = self._upload(codes, "codes")
        self.ids = self._upload(ids, "ids")
        self._bufs: dict[str, Buffer] = {}
        self.launches = 0
        self.checked_config = False

    def _upload(self, data: np.ndarray, arg: str) -> Buffer:
        buf = self.device.alloc(data.shape, data.dtype, arg=arg)
        buf.array[...] = data
        buf.sync_to_device()
        return buf

    def _buffer(self, arg: str, count: int, dtype, row: tuple = ()) -> Buffer:
        """A per-request buffer of at least ``count`` rows, grown (never shrunk) as batches need."""
        buf = self._bufs.get(arg)
        if buf is None or buf.array.shape[0] < count:
            if buf is not None:
                buf.free()
            buf = self._bufs[arg] = self.device.alloc((max(count, 1), *row), dtype, arg=arg)
        return buf

    def scan(self, qtables: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """qtables uint16[nq, nprobe, m, 256], local list ids int64[nq, nprobe] -> (dist, ids) int64[nq, k].
        A launch the device fails (BoardError: timeout, AXI error responses) raises before its results are read."""
        nq, nprobe = list_ids.shape
        lay, p = self.layout, self.layout.params
        tables = self._buffer("tables", nq * nprobe, np.uint16, (KSUB, p.m))
        lists = self._buffer("lists", nq * nprobe, np.uint64)
        results = self._buffer("results", nq * p.k, np.uint8, (RESULT_BYTES,))
        tables.array[: nq * nprobe] = lay.tables(qtables).reshape(nq * nprobe, KSUB, p.m)
        lists.array[: nq * nprobe] = lay.descriptors(self.first_beat, self.list_sizes, list_ids).reshape(-1)
        assert lists.array.itemsize == DESC_BYTES
        tables.sync_to_device()
        lists.sync_to_device()
        config = self.device.launch({"codes": self.codes, "ids": self.ids, "tables": tables, "lists": lists,
                                     "results": results}, nq, nprobe, self.timeout_s)
        self.launches += 1
        if config is not None and not self.checked_config:
            self._check_config(config)
        results.sync_from_device()
        return lay.unpack_results(results.array, nq)

    def _check_config(self, word: int) -> None:
        if word != self.layout.config_word:
            raise BoardError(f"{self.device.name}: the kernel was built for "
                             f"{KernelLayout.params_from_config(word)} (config {word:#010x}), the driver has "
                             f"{self.layout.params}; rebuild the bitstream or pass matching parameters")
        self.checked_config = True

    def close(self) -> None:
        for buf in [self.codes, self.ids, *self._bufs.values()]:
            buf.free()
        self._bufs.clear()


class KernelDriver:
    """One shard resident over the compute units ``devices``; `scan` runs batches of queries through them.

    max_table_bytes bounds the per-launch table buffer (queries are split into launches to fit).
    """

    def __init__(self, devices: Device | list[Device], params: ScanParams, shard: Shard, *,
                 timeout_s: float = 60.0, max_table_bytes: int = 64 << 20):
        devices = [devices] if isinstance(devices, Device) else list(devices)
        if not devices:
            raise InputError("the driver needs at least one compute unit")
        self.params = params
        self.layout = KernelLayout(params)
        self.max_table_bytes = max_table_bytes
        self.nlist = shard.nlist
        self.owner = split_lists(shard.list_sizes(), len(devices))
        self.local = np.zeros(self.nlist, np.int64)
        self.units = []
        for u, dev in enumerate(devices):
            mine = np.flatnonzero(self.owner == u)
            self.local[mine] = np.arange(len(mine))
            self.units.append(ComputeUnit(dev, self.layout, sub_shard(shard, mine), timeout_s))
        self._pool = ThreadPoolExecutor(len(devices), thread_name_prefix="cu") if len(devices) > 1 else None
        log.info("%s: shard of %d codes resident over %d compute unit(s)", devices[0].name, shard.ntotal,
                 len(devices))

    @property
    def launches(self) -> int:
        return sum(u.launches for u in self.units)

    def scan(self, qtables: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """qtables uint16[nq, nprobe, m, 256] (quantized), list_ids int[nq, nprobe]
        -> (dist int64[nq, k], ids int64[nq, k]; empty slots (empty_dist, -1))."""
        list_ids = np.asarray(list_ids)
        if list_ids.ndim != 2 or qtables.shape[:2] != list_ids.shape:
            raise InputError(f"tables {qtables.shape} and list ids {list_ids.shape} disagree on [nq, nprobe]")
        if list_ids.size and (list_ids.min() < 0 or list_ids.max() >= self.nlist):
            raise InputError(f"list ids must be in 0..{self.nlist - 1}")
        nq, nprobe = list_ids.shape
        step = max(1, self.max_table_bytes // max(nprobe * self.layout.table_bytes, 1))
        dist = np.empty((nq, self.params.k), np.int64)
        ids = np.empty((nq, self.params.k), np.int64)
        for lo in range(0, nq, step):
            hi = min(nq, lo + step)
            dist[lo:hi], ids[lo:hi] = self._batch(qtables[lo:hi], list_ids[lo:hi])
        return dist, ids

    def _batch(self, qtables: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.units) == 1:
            return self.units[0].scan(qtables, self.local[list_ids])
        parts = [self._pool.submit(self._unit_part, u, qtables, list_ids) for u in range(len(self.units))]
        wait(parts)               # a failed unit fails the batch only after every unit's launch has ended
        got = [f.result() for f in parts]
        return reference.merge_topk(self.params, np.stack([d for d, _ in got]), np.stack([i for _, i in got]))

    def _unit_part(self, u: int, qtables: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unit ``u`` scans its probes of each query, padded with its empty list to the widest query."""
        nq = len(list_ids)
        mine = self.owner[list_ids] == u
        width = int(mine.sum(axis=1).max()) if nq else 0
        if width == 0:
            return (np.full((nq, self.params.k), self.layout.empty_dist, np.int64),
                    np.full((nq, self.params.k), -1, np.int64))
        unit = self.units[u]
        cols = np.argsort(~mine, axis=1, kind="stable")[:, :width]       # this unit's probes first, in order
        rows = np.arange(nq)[:, None]
        keep = mine[rows, cols]
        local = np.where(keep, self.local[list_ids[rows, cols]], len(unit.list_sizes) - 1)
        tables = np.where(keep[:, :, None, None], qtables[rows, cols], np.uint16(0))
        return unit.scan(tables, local)

    def close(self) -> None:
        for unit in self.units:
            unit.close()
        if self._pool is not None:
            self._pool.shutdown()
