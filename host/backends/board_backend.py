"""Common part of the FPGA backends (pynq, xrt): tables on the host CPU, the scan on the kernel.

``device`` picks what is under the driver: "board" (the real one), "csim" (the virtual board running
the HLS kernel's C model) or "rtl" (the Amaranth AXI kernel under Verilator, host/board/rtl_device.py);
the driver code above the MMIO/buffer layer is the same for all.
"""
from __future__ import annotations

import logging
from abc import abstractmethod

from host.backends.base import ShardBackend, ShardResult
from host.backends.cpu_backend import build_quantized_tables
from host.board.csim_device import HlsCsimDevice
from host.board.device import Device
from host.board.driver import KernelDriver
from host.board.rtl_device import RtlDevice
from host.spec.errors import InputError

log = logging.getLogger(__name__)

DEVICES = ("board", "csim", "rtl")


class BoardBackend(ShardBackend):
    name = "board"

    def __init__(self, index, shard, params, device: str = "board", max_table_bytes: int = 64 << 20,
                 timeout_s: float = 60.0, **device_options):
        super().__init__(index, shard, params)
        if device not in DEVICES:
            raise InputError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
        if device == "csim":
            self.device = HlsCsimDevice(params, **device_options)
        elif device == "rtl":
            self.device = RtlDevice(params, **device_options)
        else:
            self.device = self.open_board(**device_options)
        self.driver = KernelDriver(self.device, params, shard, timeout_s=timeout_s,
                                   max_table_bytes=max_table_bytes)

    @abstractmethod
    def open_board(self, **options) -> Device:
        """The real board's device; raises host.spec.errors.BoardError when it is not there."""

    def _search(self, queries, list_ids) -> ShardResult:
        qtables, scale = build_quantized_tables(self.index, queries, list_ids, self.params.lut_bits)
        dist, ids = self.driver.scan(qtables, list_ids)
        return ShardResult(dist=dist, ids=ids, scale=scale)

    def close(self) -> None:
        self.driver.close()
        self.device.close()
