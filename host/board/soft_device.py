"""A software board: simulated device memory and the kernel's AXI4-Lite slave (`ap_ctrl_hs`).

Subclasses supply the kernel (`execute`): the HLS C model (csim_device.py), later the RTL under
Verilator. Host and device copies of every buffer are separate, so a driver that forgets a sync
reads stale data here exactly as on a board.
"""
from __future__ import annotations

import threading
from abc import abstractmethod

import numpy as np

from host.board.device import Buffer, MmioDevice
from host.spec import regmap
from host.spec.errors import BoardError

BASE_ADDRESS = 0x4000_0000
PAGE = 4096


class SimBuffer(Buffer):
    """A buffer in `SimMemory`: `array` is the host copy, the device copy lives in the memory model."""

    def __init__(self, memory: "SimMemory", shape, dtype, address: int):
        self.array = np.zeros(shape, dtype)
        self._memory = memory
        self._address = address
        self.freed = False

    @property
    def physical_address(self) -> int:
        return self._address

    def sync_to_device(self) -> None:
        self._memory.device_bytes(self._address)[: self.nbytes] = self.array.reshape(-1).view(np.uint8)

    def sync_from_device(self) -> None:
        self.array.reshape(-1).view(np.uint8)[:] = self._memory.device_bytes(self._address)[: self.nbytes]

    def free(self) -> None:
        if not self.freed:
            self._memory.release(self._address)
            self.freed = True


class SimMemory:
    """Device memory: page-aligned allocations at increasing bus addresses, each a uint8 array."""

    def __init__(self):
        self._next = BASE_ADDRESS
        self._blocks: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()            # compute units allocate and read concurrently

    def allocate(self, shape, dtype) -> SimBuffer:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        with self._lock:
            addr = self._next
            self._blocks[addr] = np.zeros(max(nbytes, 1), np.uint8)
            self._next += -(-max(nbytes, 1) // PAGE) * PAGE
        return SimBuffer(self, shape, dtype, addr)

    def release(self, addr: int) -> None:
        with self._lock:
            del self._blocks[addr]

    def device_bytes(self, addr: int) -> np.ndarray:
        """uint8 view of device memory from bus address ``addr`` to the end of its allocation."""
        with self._lock:
            blocks = list(self._blocks.items())
        for base, block in blocks:
            if base <= addr < base + block.size:
                return block[addr - base:]
        raise BoardError(f"bus address {addr:#x} is outside every allocated buffer")


class SoftDevice(MmioDevice):
    """Register file and control state machine of an `ap_ctrl_hs` kernel around `execute`.

    ``busy_reads``: how many reads of CTRL report the kernel still running after ap_start, so that the
    driver's polling loop is exercised.
    """

    name = "soft"

    def __init__(self, busy_reads: int = 2):
        self.memory = SimMemory()
        self.busy_reads = busy_reads
        self._regs = {off: 0 for off in regmap.ARG_OFFSETS.values()}
        for name in regmap.POINTER_ARGS:
            self._regs[regmap.ARG_OFFSETS[name] + 4] = 0
        self._regs.update({regmap.GIE: 0, regmap.IER: 0, regmap.ISR: 0, regmap.CONFIG_CTRL: 0})
        self._done = self._ready = False
        self._axi_error = 0                       # read-only, sticky per run (regmap.AXI_ERROR)
        self._busy_left = 0
        self.runs = 0

    def alloc(self, shape, dtype, arg: str | None = None) -> SimBuffer:
        return self.memory.allocate(shape, dtype)

    def _check(self, offset: int, value: int | None = None) -> None:
        if offset % 4 or not 0 <= offset < regmap.ADDR_SPACE:
            raise BoardError(f"register offset {offset:#x} is not a word inside the kernel's AXI4-Lite space")
        if value is not None and not 0 <= value < 1 << 32:
            raise BoardError(f"register value {value!r} does not fit 32 bits")

    def write_reg(self, offset: int, value: int) -> None:
        self._check(offset, value)
        if offset == regmap.CTRL:
            if value & regmap.AUTO_RESTART:
                raise BoardError("auto_restart is not supported by the software board")
            if value & regmap.AP_START and self._busy_left == 0:
                self._start()
        elif offset == regmap.ISR:
            self._regs[regmap.ISR] ^= value & 0x3
        elif offset in (regmap.ARG_OFFSETS["config"], regmap.CONFIG_CTRL):
            raise BoardError(f"register {offset:#x} (config) is read-only")
        elif offset in self._regs:
            self._regs[offset] = value
        # writes to reserved words are ignored, as in the generated HLS slave

    def read_reg(self, offset: int) -> int:
        self._check(offset)
        if offset == regmap.CTRL:
            if self._busy_left:
                self._busy_left -= 1
                if self._busy_left == 0:
                    self._finish()
                return regmap.AP_START                 # ap_start stays high until ap_ready
            value = regmap.AP_IDLE | (regmap.AP_DONE if self._done else 0) | (regmap.AP_READY if self._ready else 0)
            self._done = self._ready = False          # clear on read
            return value
        if offset == regmap.CONFIG_CTRL:
            value, self._regs[offset] = self._regs[offset], 0
            return value
        if offset == regmap.AXI_ERROR:
            return self._axi_error
        return self._regs.get(offset, 0)

    def _arg(self, name: str) -> int:
        off = regmap.ARG_OFFSETS[name]
        if name in regmap.POINTER_ARGS:
            return self._regs[off] | self._regs[off + 4] << 32
        return self._regs[off]

    def _start(self) -> None:
        args = {name: self._arg(name) for name in regmap.POINTER_ARGS + regmap.SCALAR_ARGS}
        self._axi_error = 0
        self._outputs = self.execute(args)
        self.runs += 1
        self._busy_left = self.busy_reads
        if self._busy_left == 0:
            self._finish()

    def _finish(self) -> None:
        self._done = self._ready = True
        self._regs[regmap.ISR] |= self._regs[regmap.IER] & 0x3
        self._regs[regmap.ARG_OFFSETS["config"]] = self._outputs["config"]
        self._regs[regmap.CONFIG_CTRL] = 1
        self._axi_error = self._outputs.get("axi_error", 0) & (regmap.AXI_ERROR_READ | regmap.AXI_ERROR_WRITE)

    @abstractmethod
    def execute(self, args: dict[str, int]) -> dict[str, int]:
        """Run the kernel on device memory: ``args`` maps argument names to register values (bus addresses
        for pointers); returns the output scalars ({"config": word}), plus {"axi_error": bits} where the
        kernel saw error responses on its AXI masters (the RTL kernel's `axi_error` register)."""
