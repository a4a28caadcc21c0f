"""A software board whose kernel is the HLS C model (hls/scan, built with g++ into libanole_scan.so).

Like the HLS kernel, the model never sets `axi_error` (HLS C code cannot see AXI responses)."""
from __future__ import annotations

import ctypes
import itertools
import logging
import os
import shutil
from pathlib import Path

from host.board.hls_build import build_csim
from host.board.soft_device import SoftDevice
from host.spec.errors import BoardError
from host.spec.layout import KernelLayout
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)
_copies = itertools.count()


def load_private(path: Path) -> ctypes.CDLL:
    """Load a private copy of the C model: its static arrays (the kernel's table memory) are one compute
    unit's state, so every unit needs its own, and units then run concurrently (ctypes drops the GIL)."""
    copy = path.with_name(f"{path.stem}.{os.getpid()}.{next(_copies)}{path.suffix}")
    shutil.copyfile(path, copy)
    try:
        return ctypes.CDLL(str(copy))
    finally:
        copy.unlink()

_SHIM_ERRORS = {-1: "tables buffer too small", -2: "lists buffer too small", -3: "results buffer too small",
                -4: "a list descriptor reaches past the codes/ids buffers"}


class HlsCsimDevice(SoftDevice):
    """The virtual board of the HLS kernel: the same C++ as the bitstream, behind the same registers."""

    name = "csim"

    def __init__(self, params: ScanParams, busy_reads: int = 2):
        super().__init__(busy_reads=busy_reads)
        self.params = params
        self.layout = KernelLayout(params)
        path = build_csim(params) / "libanole_scan.so"
        self._lib = load_private(path)
        u8p, u64 = ctypes.POINTER(ctypes.c_uint8), ctypes.c_uint64
        self._lib.anole_scan_bytes.argtypes = [u8p, u64, u8p, u64, u8p, u64, u8p, u64, u8p, u64,
                                               ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
        self._lib.anole_scan_bytes.restype = ctypes.c_int
        self._lib.anole_scan_config.restype = ctypes.c_uint
        built = self._lib.anole_scan_config()
        if built != self.layout.config_word:
            raise BoardError(f"{path} was built for {KernelLayout.params_from_config(built)}, not {params}")
        log.debug("C model %s loaded", path)

    def execute(self, args: dict[str, int]) -> dict[str, int]:
        regions = {name: self.memory.device_bytes(args[name])
                   for name in ("codes", "ids", "tables", "lists", "results")}
        ptr = {name: r.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)) for name, r in regions.items()}
        config = ctypes.c_uint(0)
        rc = self._lib.anole_scan_bytes(
            ptr["codes"], regions["codes"].size, ptr["ids"], regions["ids"].size,
            ptr["tables"], regions["tables"].size, ptr["lists"], regions["lists"].size,
            ptr["results"], regions["results"].size, args["nq"], args["nprobe"], ctypes.byref(config))
        if rc:
            raise BoardError(f"the kernel model refused the request: {_SHIM_ERRORS.get(rc, rc)}")
        return {"config": config.value}
