"""The device layer under `KernelDriver`: buffers, one kernel launch, and the register-level protocol.

`Device` is what every compute unit provides (buffers in its memory banks, `launch`). `MmioDevice` is a
device reached through the kernel's AXI4-Lite registers (PYNQ boards, the software and RTL boards): its
`launch` runs the `ap_ctrl_hs` handshake, fails a launch whose AXI masters got error responses (`axi_error`)
and reads the `config` output register. An XRT compute unit is a plain `Device`: pyxrt binds no register
access, so XRT starts the kernel and waits for it (a bus error shows only in the run's state there).
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from host.spec import regmap
from host.spec.errors import BoardError


class Buffer(ABC):
    """A buffer the kernel reads or writes by physical address; `array` is its host-side view."""

    array: np.ndarray

    @property
    @abstractmethod
    def physical_address(self) -> int:
        """Bus address the kernel's AXI masters use (a 64-bit register pair)."""

    @abstractmethod
    def sync_to_device(self) -> None:
        """Make host writes to `array` visible to the kernel (cache flush / DMA to card memory)."""

    @abstractmethod
    def sync_from_device(self) -> None:
        """Make kernel writes visible in `array` (cache invalidate / DMA from card memory)."""

    def free(self) -> None:
        """Release the buffer (optional)."""

    @property
    def nbytes(self) -> int:
        return self.array.nbytes


class Device(ABC):
    """One compute unit of the scan kernel: buffer allocation in its banks and kernel launches."""

    name = "device"

    @abstractmethod
    def alloc(self, shape, dtype, arg: str | None = None) -> Buffer:
        """A zeroed device buffer of ``shape`` and ``dtype``; ``arg`` names the kernel argument it feeds
        (for memory-bank placement on Alveo cards)."""

    @abstractmethod
    def launch(self, buffers: dict[str, Buffer], nq: int, nprobe: int, timeout_s: float) -> int | None:
        """Run the kernel once on ``buffers`` (every name of regmap.POINTER_ARGS) and wait for it; returns
        the `config` output word where the device can read it, else None. Raises BoardError for a launch
        that failed (its results must not be used)."""

    def close(self) -> None:
        """Release the board."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MmioDevice(Device):
    """A compute unit driven through the 32-bit registers of its AXI4-Lite slave (host/spec/regmap.py)."""

    @abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit register at byte ``offset`` of the kernel's control interface."""

    @abstractmethod
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit register."""

    def launch(self, buffers: dict[str, Buffer], nq: int, nprobe: int, timeout_s: float) -> int:
        if not self.read_reg(regmap.CTRL) & regmap.AP_IDLE:
            raise BoardError(f"{self.name}: the kernel is not idle (a previous launch hung?); reload the bitstream")
        for name, buf in buffers.items():
            addr = buf.physical_address
            self.write_reg(regmap.ARG_OFFSETS[name], addr & 0xFFFF_FFFF)
            self.write_reg(regmap.ARG_OFFSETS[name] + 4, addr >> 32)
        self.write_reg(regmap.ARG_OFFSETS["nq"], nq)
        self.write_reg(regmap.ARG_OFFSETS["nprobe"], nprobe)
        self.write_reg(regmap.CTRL, regmap.AP_START)
        what = f"{nq} queries x {nprobe} probes"
        self.wait_done(timeout_s, what)
        self.check_axi_error(what)
        return self.read_reg(regmap.ARG_OFFSETS["config"])

    def check_axi_error(self, what: str) -> None:
        """Fail the launch that just finished if its AXI masters got SLVERR/DECERR (`axi_error`, cleared by
        the next ap_start; the HLS kernel has no such register and reads 0 there)."""
        bits = self.read_reg(regmap.AXI_ERROR)
        channels = [ch for bit, ch in ((regmap.AXI_ERROR_READ, "read (codes, ids, tables, lists)"),
                                       (regmap.AXI_ERROR_WRITE, "write (results)")) if bits & bit]
        if channels:
            raise BoardError(f"{self.name}: the kernel's AXI {' and '.join(channels)} got SLVERR/DECERR responses "
                             f"({what}, axi_error={bits:#x}); this launch's results are discarded: check the buffer "
                             f"placement (every buffer must lie in a memory bank that its argument's AXI master "
                             f"reaches)")

    def wait_done(self, timeout_s: float, what: str) -> None:
        """Poll CTRL until ap_done (clear on read), backing off after 64 polls."""
        deadline = time.monotonic() + timeout_s
        polls = 0
        while not self.read_reg(regmap.CTRL) & regmap.AP_DONE:
            polls += 1
            if time.monotonic() > deadline:
                raise BoardError(f"{self.name}: the kernel did not finish within {timeout_s} s ({what})")
            if polls > 64:
                time.sleep(1e-4)
