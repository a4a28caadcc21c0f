"""Common part of the FPGA backends (pynq, xrt): tables on the host CPU, the scan on the kernel's units.

``device`` picks what is under the driver: "board" (the real one), "csim" (the virtual board running
the HLS kernel's C model, ``cus`` of them) or "rtl" (the Amaranth AXI kernel under Verilator,
host/board/rtl_device.py); the driver code above the device layer is the same for all. On a board image
(numpy + pynq/pyxrt only) the tables are built by the numpy reference model, elsewhere by the numba
kernels of the cpu backend; both are bit-exact with host.spec.reference.
"""
from __future__ import annotations

import importlib.util
import logging
from abc import abstractmethod

import numpy as np

from host.backends.base import ShardBackend, ShardResult
from host.board.csim_device import HlsCsimDevice
from host.board.device import Device
from host.board.driver import KernelDriver
from host.spec import reference
from host.spec.errors import InputError

log = logging.getLogger(__name__)

DEVICES = ("board", "csim", "rtl")
HAVE_NUMBA = importlib.util.find_spec("numba") is not None


def quantized_tables(index, queries: np.ndarray, list_ids: np.ndarray, lut_bits: int,
                     threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(Q uint16[nq, nprobe, m, 256], s float32[nq]): numba kernels where numba is installed, else numpy."""
    if HAVE_NUMBA:
        from host.backends.cpu_backend import build_quantized_tables  # lazy: numba is not on board images
        return build_quantized_tables(index, queries, list_ids, lut_bits, threads)
    tables = reference.float_tables(queries, list_ids, index.centroids, index.codebooks, index.lterms)
    return reference.quantize_tables(tables, lut_bits)


def virtual_units(device: str, params, cus: int, **options) -> list[Device]:
    """``cus`` software compute units: the HLS C model ("csim") or the RTL under Verilator ("rtl")."""
    if device == "csim":
        return [HlsCsimDevice(params, **options) for _ in range(cus)]
    from host.board.rtl_device import RtlDevice  # lazy: amaranth and cocotb, not on board images
    return [RtlDevice(params, **options) for _ in range(cus)]


class BoardBackend(ShardBackend):
    """A shard resident on the compute units of a board (or of a virtual board); ``threads`` builds tables."""

    name = "board"

    def __init__(self, index, shard, params, device: str = "board", max_table_bytes: int = 64 << 20,
                 timeout_s: float = 60.0, threads: int = 0, cus: int = 0, **device_options):
        super().__init__(index, shard, params)
        if device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        if isinstance(cus, bool) or not isinstance(cus, int) or cus < 0:
            raise InputError(f"cus must be an int >= 0 (0: every compute unit of the board), not {cus!r}")
        self.threads = threads
        if device == "board":
            self.devices = self.open_board(cus=cus, **device_options)
        else:
            self.devices = virtual_units(device, params, cus or 1, **device_options)
        try:
            self.driver = KernelDriver(self.devices, params, shard, timeout_s=timeout_s,
                                       max_table_bytes=max_table_bytes)
        except BaseException:
            for dev in self.devices:
                dev.close()
            raise

    @property
    def device(self) -> Device:
        """The first compute unit (all of them: `devices`)."""
        return self.devices[0]

    @abstractmethod
    def open_board(self, cus: int = 0, **options) -> list[Device]:
        """The real board's compute units; raises host.spec.errors.BoardError when it is not there."""

    def _search(self, queries, list_ids) -> ShardResult:
        qtables, scale = quantized_tables(self.index, queries, list_ids, self.params.lut_bits, self.threads)
        dist, ids = self.driver.scan(qtables, list_ids)
        return ShardResult(dist=dist, ids=ids, scale=scale)

    def close(self) -> None:
        self.driver.close()
        for dev in self.devices:
            dev.close()
