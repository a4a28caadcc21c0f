"""A PYNQ board (PYNQ-Z2, ZCU104, KV260): the overlay's kernel IP over pynq MMIO, buffers from pynq.allocate."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from host.board.device import Buffer, Device
from host.spec import regmap
from host.spec.errors import BoardError

NO_BOARD = ("no PYNQ board found (pynq: 'No Devices Found'): the pynq backend must run on the board itself "
            "(PYNQ image 3.0+, as root) with the anole overlay (docs/deployment.md); use "
            "device='csim' for the virtual board on a machine without one")


class PynqBuffer(Buffer):
    """A pynq.allocate buffer (contiguous memory, cache maintenance by sync_*)."""

    def __init__(self, buf):
        self.array = buf

    @property
    def physical_address(self) -> int:
        return int(self.array.physical_address)

    def sync_to_device(self) -> None:
        self.array.sync_to_device()

    def sync_from_device(self) -> None:
        self.array.sync_from_device()

    def free(self) -> None:
        self.array.freebuffer()


def _import_pynq():
    try:
        with warnings.catch_warnings():          # pynq warns "No devices found" on import; we say it better
            warnings.simplefilter("ignore")
            import pynq
    except ImportError as e:
        raise BoardError(f"the pynq backend needs the pynq package ({e}); it ships with the PYNQ board image") from None
    return pynq


class PynqDevice(Device):
    """The `anole_scan` IP of an overlay (``bitstream``: .bit with its .hwh beside it)."""

    name = "pynq"

    def __init__(self, bitstream: str | Path | None, kernel: str = regmap.KERNEL_NAME, download: bool = True):
        pynq = _import_pynq()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            devices = pynq.Device.devices
        if not devices:
            raise BoardError(NO_BOARD)
        if bitstream is None:
            raise BoardError("the pynq backend needs bitstream=PATH.bit (built by `make -C hls overlay`)")
        bit = Path(bitstream)
        if not bit.is_file() or not bit.with_suffix(".hwh").is_file():
            raise BoardError(f"{bit}: the overlay needs both {bit.name} and {bit.with_suffix('.hwh').name}")
        try:
            self.overlay = pynq.Overlay(str(bit), download=download)
        except RuntimeError as e:
            if "No Devices Found" in str(e):
                raise BoardError(NO_BOARD) from None
            raise BoardError(f"pynq could not load {bit}: {e}") from None
        names = [n for n in self.overlay.ip_dict if n.split("/")[-1].startswith(kernel)]
        if not names:
            raise BoardError(f"{bit}: no IP named {kernel}* in the overlay (IPs: {', '.join(self.overlay.ip_dict)})")
        self.ip = self.overlay.ip_dict[names[0]]
        self.mmio = pynq.MMIO(self.ip["phys_addr"], regmap.ADDR_SPACE)
        self._pynq = pynq

    def write_reg(self, offset: int, value: int) -> None:
        self.mmio.write(offset, int(value))

    def read_reg(self, offset: int) -> int:
        return int(self.mmio.read(offset))

    def alloc(self, shape, dtype, arg: str | None = None) -> PynqBuffer:
        buf = self._pynq.allocate(shape=shape, dtype=np.dtype(dtype))
        buf[...] = 0
        return PynqBuffer(buf)

    def close(self) -> None:
        self.overlay = None
