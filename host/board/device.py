"""The MMIO/buffer layer under `KernelDriver`: what a board (or a simulated board) must provide."""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


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
    """One kernel instance on a board: 32-bit registers of its AXI4-Lite slave and buffer allocation."""

    name = "device"

    @abstractmethod
    def write_reg(self, offset: int, value: int) -> None:
        """Write a 32-bit register at byte ``offset`` of the kernel's control interface."""

    @abstractmethod
    def read_reg(self, offset: int) -> int:
        """Read a 32-bit register."""

    @abstractmethod
    def alloc(self, shape, dtype, arg: str | None = None) -> Buffer:
        """A zeroed device buffer of ``shape`` and ``dtype``; ``arg`` names the kernel argument it feeds
        (for memory-bank placement on Alveo cards)."""

    def close(self) -> None:
        """Release the board."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
