"""Memory-node backend that scans real shards on the RTL: the Verilated scan core, cycle by cycle.

Tables are built on the host CPU (the bit-exact builder of the cpu backend) and streamed into the
kernel with the shard's codes, as a board would; the results come back from the core's output stream.
The backend counts kernel cycles and reports the time the same scan takes on an FPGA at ``clock_mhz``.
"""
from __future__ import annotations

import ctypes
import logging
import time

import numpy as np

from host.backends.base import ShardBackend, ShardResult
from host.backends.cpu_backend import build_quantized_tables
from host.backends.verilator.build import SimulatorError, build_harness

log = logging.getLogger(__name__)

_P = ctypes.c_void_p
_CONFIG_FIELDS = (("m", None), ("lanes", None), ("lut_bits", None), ("id_bits", None), ("list_bits", None),
                  ("k", None), ("dist_bits", None), ("table_beats", None),
                  ("t_rows", ("table__payload", "rows")), ("t_list", ("table__payload", "list")),
                  ("i_op", ("i__payload", "op")), ("i_valid", ("i__payload", "valid")),
                  ("i_list", ("i__payload", "list")), ("i_ids", ("i__payload", "ids")),
                  ("i_codes", ("i__payload", "codes")), ("o_id", ("o__payload", "id")),
                  ("o_dist", ("o__payload", "dist")), ("o_last", ("o__payload", "last")))


class VerilatorBackend(ShardBackend):
    """Scans with the cycle-accurate RTL model; ``stats`` holds cycles, codes and FPGA-projected time."""

    name = "verilator"

    def __init__(self, index, shard, params, clock_mhz: float = 150.0, threads: int = 0):
        super().__init__(index, shard, params)
        if clock_mhz <= 0:
            raise SimulatorError(f"clock_mhz must be > 0, not {clock_mhz}")
        self.clock_mhz = clock_mhz
        self.threads = threads
        lib_path, desc = build_harness(params)
        self.lib = lib = ctypes.CDLL(str(lib_path))
        lib.anole_open.restype = _P
        lib.anole_open.argtypes = [_P]
        lib.anole_close.argtypes = [_P]
        lib.anole_set_shard.argtypes = [_P, _P, _P, _P, ctypes.c_int64]
        lib.anole_cycles.restype = ctypes.c_uint64
        lib.anole_cycles.argtypes = [_P]
        lib.anole_error.restype = ctypes.c_uint32
        lib.anole_error.argtypes = [_P]
        lib.anole_scan.restype = ctypes.c_int
        lib.anole_scan.argtypes = [_P, ctypes.c_int64, ctypes.c_int64, _P, _P, _P, _P, ctypes.c_int64]
        self._cfg = self._config(desc)
        self._h = lib.anole_open(self._cfg.ctypes.data)
        # the harness reads these arrays in place: keep them alive and contiguous
        self._codes = np.ascontiguousarray(shard.codes, dtype=np.uint8)
        self._ids = np.ascontiguousarray(shard.ids, dtype=np.int64).astype(np.uint64)
        self._offsets = np.ascontiguousarray(shard.offsets, dtype=np.int64)
        lib.anole_set_shard(self._h, self._codes.ctypes.data, self._ids.ctypes.data, self._offsets.ctypes.data,
                            shard.nlist)
        self.stats = {"queries": 0, "codes": 0, "cycles": 0, "sim_seconds": 0.0}

    def _config(self, desc: dict) -> np.ndarray:
        p, ports = self.params, desc["ports"]
        values = {"dist_bits": desc["dist_bits"], "table_beats": desc["table_beats"], **p.to_dict()}
        cfg = [values[name] if where is None else ports[where[0]]["fields"][where[1]]["offset"]
               for name, where in _CONFIG_FIELDS]
        cfg += [ports[f"{s}__payload"]["width"] for s in ("table", "i", "o")]
        return np.array(cfg, dtype=np.int32)

    def _search(self, queries, list_ids) -> ShardResult:
        p = self.params
        tables, scale = build_quantized_tables(self.index, queries, list_ids, p.lut_bits, threads=self.threads)
        tables = np.ascontiguousarray(tables)
        nq, nprobe = list_ids.shape
        dist = np.zeros((nq, p.k), np.uint64)
        ids = np.zeros((nq, p.k), np.uint64)
        c0, t0 = self.lib.anole_cycles(self._h), time.perf_counter()
        rc = self.lib.anole_scan(self._h, nq, nprobe, tables.ctypes.data, list_ids.ctypes.data,
                                 dist.ctypes.data, ids.ctypes.data, 1_000_000)
        if rc:
            raise SimulatorError(f"the scan core stopped making progress (error flags {self.lib.anole_error(self._h):#x})")
        err = self.lib.anole_error(self._h)
        if err:
            raise SimulatorError(f"the scan core flagged a protocol error {err:#x}")
        self.stats["sim_seconds"] += time.perf_counter() - t0
        self.stats["cycles"] += self.lib.anole_cycles(self._h) - c0
        self.stats["queries"] += nq
        self.stats["codes"] += int(np.diff(self._offsets)[list_ids].sum())
        out_ids = ids.astype(np.int64)
        out_ids[ids == np.uint64(p.max_id)] = -1
        return ShardResult(dist=dist.astype(np.int64), ids=out_ids, scale=scale)

    @property
    def fpga_seconds(self) -> float:
        """Time the kernel cycles so far take at ``clock_mhz``."""
        return self.stats["cycles"] / (self.clock_mhz * 1e6)

    def close(self) -> None:
        if getattr(self, "_h", None):
            self.lib.anole_close(self._h)
            self._h = None
