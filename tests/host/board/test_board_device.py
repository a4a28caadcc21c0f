"""The software board's ap_ctrl_hs register file and memory model (what the real slave does)."""
from __future__ import annotations

import numpy as np
import pytest

from host.board.soft_device import SoftDevice
from host.spec import regmap
from host.spec.errors import BoardError


class EchoDevice(SoftDevice):
    """Kernel stub: copies nq uint32 words from `tables` to `results`, records its arguments."""

    def execute(self, args):
        self.args = args
        n = 4 * args["nq"]
        self.memory.device_bytes(args["results"])[:n] = self.memory.device_bytes(args["tables"])[:n]
        return {"config": 0x8000_1234}


def start(dev, nq=3):
    src, dst = dev.alloc((nq,), np.uint32), dev.alloc((nq,), np.uint32)
    src.array[:] = np.arange(nq) + 7
    src.sync_to_device()
    for name, buf in (("tables", src), ("results", dst)):
        dev.write_reg(regmap.ARG_OFFSETS[name], buf.physical_address & 0xFFFFFFFF)
        dev.write_reg(regmap.ARG_OFFSETS[name] + 4, buf.physical_address >> 32)
    dev.write_reg(regmap.ARG_OFFSETS["nq"], nq)
    dev.write_reg(regmap.CTRL, regmap.AP_START)
    return src, dst


def test_handshake_done_is_clear_on_read():
    dev = EchoDevice(busy_reads=2)
    assert dev.read_reg(regmap.CTRL) == regmap.AP_IDLE
    _, dst = start(dev)
    assert dev.read_reg(regmap.CTRL) == regmap.AP_START          # running: start held, not idle
    assert dev.read_reg(regmap.CTRL) == regmap.AP_START
    assert dev.read_reg(regmap.CTRL) == regmap.AP_IDLE | regmap.AP_DONE | regmap.AP_READY
    assert dev.read_reg(regmap.CTRL) == regmap.AP_IDLE            # done and ready cleared by the read
    dst.sync_from_device()
    assert dst.array.tolist() == [7, 8, 9]
    assert dev.args["nq"] == 3 and dev.args["codes"] == 0


def test_interrupt_status_and_output_register():
    dev = EchoDevice(busy_reads=0)
    dev.write_reg(regmap.GIE, 1)
    dev.write_reg(regmap.IER, 1)                                 # ap_done only
    start(dev)
    assert dev.read_reg(regmap.ISR) == 1
    dev.write_reg(regmap.ISR, 1)                                 # toggle on write clears it
    assert dev.read_reg(regmap.ISR) == 0
    assert dev.read_reg(regmap.ARG_OFFSETS["config"]) == 0x8000_1234
    assert dev.read_reg(regmap.CONFIG_CTRL) == 1                 # ap_vld, clear on read
    assert dev.read_reg(regmap.CONFIG_CTRL) == 0
    assert dev.read_reg(regmap.GIE) == 1 and dev.read_reg(regmap.IER) == 1


def test_register_and_address_errors():
    dev = EchoDevice()
    with pytest.raises(BoardError, match="offset 0x2"):
        dev.write_reg(0x2, 1)
    with pytest.raises(BoardError, match="offset 0x80"):
        dev.read_reg(regmap.ADDR_SPACE)
    with pytest.raises(BoardError, match="read-only"):
        dev.write_reg(regmap.ARG_OFFSETS["config"], 1)
    with pytest.raises(BoardError, match="32 bits"):
        dev.write_reg(regmap.ARG_OFFSETS["nq"], 1 << 32)
    with pytest.raises(BoardError, match="outside every allocated buffer"):
        dev.write_reg(regmap.CTRL, regmap.AP_START)              # pointer registers still 0
    buf = dev.alloc((10,), np.uint8)
    buf.free()
    with pytest.raises(BoardError, match="outside"):
        dev.memory.device_bytes(buf.physical_address)


def test_buffers_do_not_overlap():
    dev = EchoDevice()
    bufs = [dev.alloc((n,), np.uint64) for n in (0, 1, 1000, 3)]
    spans = sorted((b.physical_address, b.physical_address + max(b.nbytes, 1)) for b in bufs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert all(b.physical_address % 4096 == 0 for b in bufs)


def test_register_map_is_vitis_hls_spacing():
    """Pointers take lo/hi/reserved words, scalars data/reserved, in argument order from 0x10."""
    assert [regmap.ARG_OFFSETS[n] for n in regmap.POINTER_ARGS] == [0x10, 0x1C, 0x28, 0x34, 0x40]
    assert [regmap.ARG_OFFSETS[n] for n in regmap.SCALAR_ARGS + regmap.OUTPUT_ARGS] == [0x4C, 0x54, 0x5C]
    assert regmap.ARG_INDEX == {"codes": 0, "ids": 1, "tables": 2, "lists": 3, "results": 4,
                                "nq": 5, "nprobe": 6, "config": 7}


def test_axi_error_is_sticky_per_run_and_read_only(axi_fault):
    """axi_error: 0 while running, the run's bits after ap_done, writes ignored, cleared by the next ap_start."""
    dev = EchoDevice(busy_reads=1)
    axi_fault(dev, regmap.AXI_ERROR_WRITE, run=0)
    start(dev)
    assert dev.read_reg(regmap.AXI_ERROR) == 0
    assert dev.read_reg(regmap.CTRL) == regmap.AP_START                  # the run ends with this read
    assert dev.read_reg(regmap.CTRL) & regmap.AP_DONE
    assert dev.read_reg(regmap.AXI_ERROR) == regmap.AXI_ERROR_WRITE
    dev.write_reg(regmap.AXI_ERROR, 0)
    assert dev.read_reg(regmap.AXI_ERROR) == regmap.AXI_ERROR_WRITE
    _, dst = start(dev)
    assert dev.read_reg(regmap.AXI_ERROR) == 0
    assert [dev.read_reg(regmap.CTRL) & regmap.AP_DONE for _ in range(2)] == [0, regmap.AP_DONE]
    dst.sync_from_device()
    assert dev.read_reg(regmap.AXI_ERROR) == 0 and dst.array.tolist() == [7, 8, 9]
