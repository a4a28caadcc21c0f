"""Drives the scan kernel through any `Device`: buffer layout, register writes, start, poll, results.

Nothing here knows whether the device is a PYNQ board, an Alveo card or a software board.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from host.board.device import Buffer, Device
from host.index.index_dir import Shard
from host.spec import regmap
from host.spec.errors import BoardError, InputError
from host.spec.layout import DESC_BYTES, RESULT_BYTES, KernelLayout
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)


class KernelDriver:
    """One shard resident in device memory; `scan` runs batches of queries through the kernel.

    max_table_bytes bounds the per-launch table buffer (queries are split into launches to fit).
    """

    def __init__(self, device: Device, params: ScanParams, shard: Shard, *, timeout_s: float = 60.0,
                 max_table_bytes: int = 64 << 20):
        self.device = device
        self.params = params
        self.layout = KernelLayout(params)
        self.timeout_s = timeout_s
        self.max_table_bytes = max_table_bytes
        codes, ids, self.first_beat = self.layout.shard_image(shard)
        self.list_sizes = shard.list_sizes().astype(np.int64)
        self.codes = self._upload(codes, "codes")
        self.ids = self._upload(ids, "ids")
        self._bufs: dict[str, Buffer] = {}
        self.launches = 0
        self._checked_config = False
        log.info("%s: shard of %d codes resident (%d + %d bytes)", device.name, shard.ntotal,
                 self.codes.nbytes, self.ids.nbytes)

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
        """qtables uint16[nq, nprobe, m, 256] (quantized), list_ids int[nq, nprobe]
        -> (dist int64[nq, k], ids int64[nq, k]; empty slots (empty_dist, -1))."""
        list_ids = np.asarray(list_ids)
        if list_ids.ndim != 2 or qtables.shape[:2] != list_ids.shape:
            raise InputError(f"tables {qtables.shape} and list ids {list_ids.shape} disagree on [nq, nprobe]")
        if list_ids.size and (list_ids.min() < 0 or list_ids.max() >= len(self.list_sizes)):
            raise InputError(f"list ids must be in 0..{len(self.list_sizes) - 1}")
        nq, nprobe = list_ids.shape
        per_query = max(nprobe * self.layout.table_bytes, 1)
        step = max(1, self.max_table_bytes // per_query)
        dist = np.empty((nq, self.params.k), np.int64)
        ids = np.empty((nq, self.params.k), np.int64)
        for lo in range(0, nq, step):
            hi = min(nq, lo + step)
            dist[lo:hi], ids[lo:hi] = self._launch(qtables[lo:hi], list_ids[lo:hi])
        return dist, ids

    def _launch(self, qtables: np.ndarray, list_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nq, nprobe = list_ids.shape
        lay = self.layout
        tables = self._buffer("tables", nq * nprobe, np.uint16, (256, self.params.m))
        lists = self._buffer("lists", nq * nprobe, np.uint64)
        results = self._buffer("results", nq * self.params.k, np.uint8, (RESULT_BYTES,))
        tables.array[: nq * nprobe] = lay.tables(qtables).reshape(nq * nprobe, 256, self.params.m)
        lists.array[: nq * nprobe] = lay.descriptors(self.first_beat, self.list_sizes, list_ids).reshape(-1)
        assert lists.array.itemsize == DESC_BYTES
        tables.sync_to_device()
        lists.sync_to_device()
        self._run({"codes": self.codes, "ids": self.ids, "tables": tables, "lists": lists,
                   "results": results}, nq, nprobe)
        results.sync_from_device()
        return lay.unpack_results(results.array, nq)

    def _run(self, buffers: dict[str, Buffer], nq: int, nprobe: int) -> None:
        dev = self.device
        if not dev.read_reg(regmap.CTRL) & regmap.AP_IDLE:
            raise BoardError(f"{dev.name}: the kernel is not idle (a previous launch hung?); reload the bitstream")
        for name, buf in buffers.items():
            addr = buf.physical_address
            dev.write_reg(regmap.ARG_OFFSETS[name], addr & 0xFFFF_FFFF)
            dev.write_reg(regmap.ARG_OFFSETS[name] + 4, addr >> 32)
        dev.write_reg(regmap.ARG_OFFSETS["nq"], nq)
        dev.write_reg(regmap.ARG_OFFSETS["nprobe"], nprobe)
        dev.write_reg(regmap.CTRL, regmap.AP_START)
        deadline = time.monotonic() + self.timeout_s
        polls = 0
        while not dev.read_reg(regmap.CTRL) & regmap.AP_DONE:
            polls += 1
            if time.monotonic() > deadline:
                raise BoardError(f"{dev.name}: the kernel did not finish within {self.timeout_s} s "
                                 f"({nq} queries x {nprobe} probes)")
            if polls > 64:
                time.sleep(1e-4)
        self.launches += 1
        if not self._checked_config:
            self._check_config()

    def _check_config(self) -> None:
        word = self.device.read_reg(regmap.ARG_OFFSETS["config"])
        if word != self.layout.config_word:
            raise BoardError(f"{self.device.name}: the kernel was built for "
                             f"{KernelLayout.params_from_config(word)} (config {word:#010x}), the driver has "
                             f"{self.params}; rebuild the bitstream or pass matching parameters")
        self._checked_config = True

    def close(self) -> None:
        for buf in [self.codes, self.ids, *self._bufs.values()]:
            buf.free()
        self._bufs.clear()
