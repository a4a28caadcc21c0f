"""A PYNQ board (PYNQ-Z2, ZCU104, KV260): the overlay's `anole_scan` IPs through pynq's own driver model.

`AnoleScanIP` is a `pynq.DefaultIP` bound (`bindto`) to the kernel's VLNV, so `pynq.Overlay` hands it out
for every kernel instance; its `register_map` (from the .hwh) is checked against host/spec/regmap.py when
the board opens. Buffers come from `pynq.allocate`. Each kernel instance of the overlay is one compute unit;
a launch goes through its MMIO (`MmioDevice.launch`), which also reads the RTL kernel's `axi_error` register
(0x70; an HLS kernel reads 0 there) and fails a launch whose AXI masters got SLVERR/DECERR.
"""
from __future__ import annotations

import warnings
from functools import cache, reduce
from pathlib import Path

import numpy as np

from host.board.device import Buffer, MmioDevice
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


@cache
def import_pynq():
    """The pynq package, with `AnoleScanIP` registered as the driver of the kernel's VLNVs."""
    try:
        with warnings.catch_warnings():          # pynq warns "No devices found" on import; we say it better
            warnings.simplefilter("ignore")
            import pynq
    except ImportError as e:
        raise BoardError(f"the pynq backend needs the pynq package ({e}); it ships with the PYNQ board image") from None

    class AnoleScanIP(pynq.DefaultIP):
        """pynq driver of one `anole_scan` kernel instance (HLS or RTL build)."""

        bindto = [regmap.HLS_VLNV, regmap.RTL_VLNV]

        def register_offsets(self) -> dict[str, int]:
            """{name: offset} of the .hwh register map (empty when the .hwh lists no registers)."""
            if not self._registers:
                return {}
            return {name: int(reg["address_offset"]) for name, reg in self._registers.items()}

    pynq.AnoleScanIP = AnoleScanIP
    return pynq


def check_register_map(name: str, offsets: dict[str, int]) -> None:
    """Refuse an IP whose .hwh register map disagrees with host/spec/regmap.py (a kernel of another version)."""
    want = regmap.hwh_register_names()
    bad = [f"{reg} at {offsets[reg]:#x} (expected {off:#x})" for reg, off in want.items()
           if reg in offsets and offsets[reg] != off]
    missing = [reg for reg in ("CTRL", "codes_1", "nq", "nprobe", "config") if offsets and reg not in offsets]
    if bad or missing:
        raise BoardError(f"{name}: the overlay's kernel has another register map ({', '.join(bad + missing)}"
                         f"{' missing' if missing else ''}); rebuild the overlay from this version "
                         f"(make -C hls overlay)")


class PynqDevice(MmioDevice):
    """One kernel instance (`ip`, an `AnoleScanIP`, named ``name`` in the overlay); registers via its MMIO."""

    name = "pynq"

    def __init__(self, pynq, overlay, ip, name: str = ""):
        self._pynq, self.overlay, self.ip = pynq, overlay, ip
        if name:
            self.name = f"pynq:{name}"

    def write_reg(self, offset: int, value: int) -> None:
        self.ip.write(offset, int(value))

    def read_reg(self, offset: int) -> int:
        return int(self.ip.read(offset))

    def alloc(self, shape, dtype, arg: str | None = None) -> PynqBuffer:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        try:
            buf = self._pynq.allocate(shape=shape, dtype=np.dtype(dtype), target=self.overlay.device)
        except (RuntimeError, MemoryError) as e:
            raise BoardError(f"pynq cannot allocate {nbytes} bytes of contiguous memory for {arg} ({e}); split "
                             f"the index into more shards or enlarge the CMA pool (cma= on the kernel command "
                             f"line)") from None
        buf[...] = 0
        return PynqBuffer(buf)


def open_overlay(bitstream: str | Path | None, download: bool = True, cus: int = 0,
                 device=None) -> list[PynqDevice]:
    """The compute units (every `anole_scan` IP, by name) of overlay ``bitstream`` (.bit with its .hwh);
    ``cus`` > 0 asks for that many. ``device``: a pynq Device (default: the board's)."""
    pynq = import_pynq()
    if bitstream is None:
        raise BoardError("the pynq backend needs bitstream=PATH.bit (built by `make -C hls overlay`)")
    bit = Path(bitstream)
    if not bit.is_file() or not bit.with_suffix(".hwh").is_file():
        raise BoardError(f"{bit}: the overlay needs both {bit.name} and {bit.with_suffix('.hwh').name} "
                         f"(copy both from build/hls/<tag>/<board>/overlay/)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            device = device or pynq.Device.active_device
            overlay = pynq.Overlay(str(bit.resolve()), download=download, device=device)
    except RuntimeError as e:
        if "No Devices Found" in str(e):
            raise BoardError(NO_BOARD) from None
        raise BoardError(f"pynq could not load {bit}: {e}") from None
    names = sorted(n for n, d in overlay.ip_dict.items() if d.get("type") in pynq.AnoleScanIP.bindto)
    if not names:
        raise BoardError(f"{bit}: no {regmap.KERNEL_NAME} IP ({regmap.HLS_VLNV}) in the overlay "
                         f"(IPs: {', '.join(overlay.ip_dict)}); is this the anole overlay?")
    if cus and len(names) < cus:
        raise BoardError(f"{bit}: {cus} compute units asked, the overlay has {len(names)} ({', '.join(names)})")
    units = []
    for name in names[: cus or len(names)]:
        ip = reduce(getattr, name.split("/"), overlay)           # pynq instantiates the bound driver
        check_register_map(name, ip.register_offsets())
        units.append(PynqDevice(pynq, overlay, ip, name))
    return units
