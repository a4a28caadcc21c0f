"""The pynq backend through the real pynq package (Overlay, DefaultIP/bindto, register_map, MMIO,
PynqBuffer, the .hwh parser) with only pynq's lowest layer, the `pynq.Device`, replaced by a simulated
Zynq whose kernel instances run the HLS C model on one shared memory (or, in the sweep, the RTL kernel
under Verilator).

cocotbpynq (PyPI 0.2.0) was evaluated for this and not used: it replaces the whole pynq package (its own
Overlay, DefaultIP and MMIO classes), so the real PYNQ driver path would not run; it is also GPL-3.0.
"""
from __future__ import annotations

import numpy as np
import pytest
from pynq.ps import ZYNQ_ARCH

from host.backends import make_backend
from host.backends.reference_backend import ReferenceBackend
from host.board.csim_device import HlsCsimDevice
from host.board.pynq_device import import_pynq
from host.board.soft_device import SimMemory
from host.spec import regmap
from host.spec.errors import BoardError
from host.spec.scan_params import ScanParams

pynq = import_pynq()
BASE = 0x4000_0000
SPAN = 0x1_0000
PS_BASE = 0xF800_0000


def _prop(name, value):
    return f'<PROPERTY NAME="{name}" VALUE="{value}"/>'


def _register(name, offset):
    fields = ""
    if name == "CTRL":
        fields = "<FIELDS>" + "".join(
            f'<FIELD NAME="{f}">{_prop("BIT_OFFSET", bit)}{_prop("BIT_WIDTH", 1)}{_prop("ACCESS", "read-write")}</FIELD>'
            for f, bit in (("AP_START", 0), ("AP_DONE", 1), ("AP_IDLE", 2), ("AP_READY", 3))) + "</FIELDS>"
    return (f'<REGISTER NAME="{name}">{_prop("ADDRESS_OFFSET", hex(offset))}{_prop("SIZE", 32)}'
            f'{_prop("ACCESS", "read-write")}{_prop("DESCRIPTION", name)}{fields}</REGISTER>')


def overlay_hwh(units: int, vlnv: str = regmap.HLS_VLNV, registers: dict | None = None) -> str:
    """A Zynq-7000 hardware handoff with ``units`` kernel instances anole_scan_<i> on M_AXI_GP0, laid out
    as Vivado writes it for hls/pynq/anole_overlay.tcl (PS parameters, memory map, register map). The PL
    clocks are marked disabled: setting them goes through the PS clock registers, which are not simulated."""
    registers = registers or regmap.hwh_register_names()
    regs = "".join(_register(n, o) for n, o in registers.items())
    ranges = "".join(f'<MEMRANGE INSTANCE="anole_scan_{i}" BASEVALUE="{hex(BASE + i * SPAN)}" '
                     f'HIGHVALUE="{hex(BASE + (i + 1) * SPAN - 1)}" MEMTYPE="REGISTER" '
                     f'MASTERBUSINTERFACE="M_AXI_GP0" SLAVEBUSINTERFACE="s_axi_control"/>' for i in range(units))
    params = "".join(f'<PARAMETER NAME="PCW_FCLK{c}_PERIPHERAL_DIVISOR{d}" VALUE="{5 if d == 0 else 2}"/>'
                     for c in range(4) for d in range(2))
    params += "".join(f'<PARAMETER NAME="PCW_FPGA_FCLK{c}_ENABLE" VALUE="0"/>' for c in range(4))
    kernels = "".join(f'<MODULE FULLNAME="/anole_scan_{i}" INSTANCE="anole_scan_{i}" MODTYPE="anole_scan" '
                      f'VLNV="{vlnv}"><PARAMETERS/><ADDRESSBLOCKS><ADDRESSBLOCK NAME="Reg"><REGISTERS>{regs}'
                      f'</REGISTERS></ADDRESSBLOCK></ADDRESSBLOCKS><PORTS/><BUSINTERFACES/></MODULE>'
                      for i in range(units))
    return (f'<?xml version="1.0" encoding="UTF-8"?><EDKSYSTEM><EXTERNALPORTS/><MODULES>'
            f'<MODULE FULLNAME="/ps" INSTANCE="ps" MODTYPE="processing_system7" '
            f'VLNV="xilinx.com:ip:processing_system7:5.5"><PARAMETERS>{params}</PARAMETERS>'
            f'<MEMORYMAP>{ranges}</MEMORYMAP><PORTS/><BUSINTERFACES/></MODULE>{kernels}</MODULES></EDKSYSTEM>')


class SimZynq(pynq.Device):
    """pynq's lowest layer for a simulated board: register access (capability REGISTER_RW) goes to the
    kernel instance mapped at that address, buffers live in one simulated DDR, and the bitstream's metadata
    is read by pynq's own Zynq .hwh parser. No `_probe_`, so pynq never picks it up on its own."""

    def __init__(self, params: ScanParams, cma_bytes: int = 128 << 20):
        super().__init__("sim-zynq")
        self.cma_left = cma_bytes
        self.capabilities = {"REGISTER_RW": True}
        self.arch = ZYNQ_ARCH
        self.ps_regs: dict[int, bytes] = {}          # PS registers (the PL clock dividers pynq programs)
        self.memory = SimMemory()
        self.params = params
        self.units: dict[int, HlsCsimDevice] = {}
        self._host: dict[int, np.ndarray] = {}
        self.timestamp = ""

    def get_bitfile_metadata(self, bitfile_name):
        from pynq.pl_server.hwh_parser import _HWHZynq
        with open(bitfile_name.rsplit(".", 1)[0] + ".hwh") as f:
            parser = _HWHZynq(hwh_data=f.read())
        parser.systemgraph = None            # the board's metadata parser adds a graph; nothing here reads it
        return parser

    def download(self, bitstream, parser=None):
        for name, ip in parser.ip_dict.items():
            if ip.get("type") in pynq.AnoleScanIP.bindto:
                unit = HlsCsimDevice(self.params, busy_reads=3)
                unit.memory = self.memory
                self.units[ip["phys_addr"]] = unit
        self.post_download(bitstream, parser)

    def _unit(self, address):
        base = address & ~(SPAN - 1)
        if base not in self.units:
            raise RuntimeError(f"bus error: nothing at {address:#x}")
        return self.units[base], address - base

    def read_registers(self, address, length):
        if address >= PS_BASE:
            return self.ps_regs.get(address, bytes(length))
        unit, off = self._unit(address)
        return unit.read_reg(off).to_bytes(4, "little")

    def write_registers(self, address, data):
        if address >= PS_BASE:
            self.ps_regs[address] = bytes(data)
            return
        unit, off = self._unit(address)
        unit.write_reg(off, int.from_bytes(data, "little"))

    def allocate(self, shape, dtype, **kwargs):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if nbytes > self.cma_left:
            raise RuntimeError("Failed to allocate memory!")       # what pynq's CMA allocator raises
        self.cma_left -= nbytes
        sim = self.memory.allocate(shape, dtype)
        host = np.zeros(max(sim.nbytes, 1), np.uint8)
        self._host[sim.physical_address] = host
        return pynq.buffer.PynqBuffer(shape, dtype, buffer=host, device=self, device_address=sim.physical_address,
                                      bo=sim.physical_address, coherent=False)

    def flush(self, bo, offset, ptr, size):
        self.memory.device_bytes(bo)[offset: offset + size] = self._host[bo][offset: offset + size]

    def invalidate(self, bo, offset, ptr, size):
        self._host[bo][offset: offset + size] = self.memory.device_bytes(bo)[offset: offset + size]


class SimZynqRtl(SimZynq):
    """The same lowest layer with the RTL kernel (anole_scan_axi under Verilator, host/board/rtl_device.py)
    as the overlay's one kernel instance: its AXI RAM is the board's memory."""

    def download(self, bitstream, parser=None):
        from host.board.rtl_device import RtlDevice
        bases = [ip["phys_addr"] for ip in parser.ip_dict.values() if ip.get("type") in pynq.AnoleScanIP.bindto]
        assert len(bases) == 1, "one simulated RTL kernel per board"
        self.rtl = self.units[bases[0]] = RtlDevice(self.params)
        self.post_download(bitstream, parser)

    def allocate(self, shape, dtype, **kwargs):
        addr = self.rtl.alloc(shape, dtype).physical_address
        host = np.zeros(max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1), np.uint8)
        self._host[addr] = host
        return pynq.buffer.PynqBuffer(shape, dtype, buffer=host, device=self, device_address=addr, bo=addr,
                                      coherent=False)

    def flush(self, bo, offset, ptr, size):
        self.rtl.write_mem(bo + offset, self._host[bo][offset: offset + size].tobytes())

    def invalidate(self, bo, offset, ptr, size):
        self._host[bo][offset: offset + size] = np.frombuffer(self.rtl.read_mem(bo + offset, size), np.uint8)


@pytest.fixture
def overlay(tmp_path):
    def make(units, **hwh):
        bit = tmp_path / "anole.bit"
        bit.write_bytes(b"\0" * 64)
        bit.with_suffix(".hwh").write_text(overlay_hwh(units, **hwh))
        return str(bit)
    return make


@pytest.mark.parametrize("units", [1, 3])
def test_pynq_driver_end_to_end(units, overlay, small_index, small_data):
    """Overlay -> AnoleScanIP (bindto) per kernel instance -> registers through pynq MMIO -> bit-exact."""
    _, queries = small_data
    queries = queries[:16]
    lists = small_index.coarse_search(queries, 6)
    p = ScanParams(m=small_index.m, k=10, lanes=4)
    shard = small_index.shards[1]
    board = SimZynq(p)
    b = make_backend("pynq", small_index, shard, p, bitstream=overlay(units), pynq_device=board)
    try:
        assert all(isinstance(d.ip, pynq.AnoleScanIP) for d in b.devices) and len(b.devices) == units
        assert b.devices[0].ip.register_map.CTRL.address == regmap.CTRL
        got = b.search(queries, lists)
        assert sum(u.runs for u in board.units.values()) >= units
    finally:
        b.close()
    want = ReferenceBackend(small_index, shard, p).search(queries, lists)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)


def test_pynq_axi_error_fails_that_launch(overlay, small_index, small_data, axi_fault):
    """An RTL overlay's kernel reports a read error response in axi_error (read through pynq's MMIO): one line
    naming the instance, the channel and the fix, no results; the next search is bit-exact."""
    _, queries = small_data
    queries = queries[:8]
    lists = small_index.coarse_search(queries, 4)
    p = ScanParams(m=small_index.m, k=10, lanes=4)
    shard = small_index.shards[1]
    board = SimZynq(p)
    b = make_backend("pynq", small_index, shard, p, bitstream=overlay(1, vlnv=regmap.RTL_VLNV), pynq_device=board)
    try:
        unit = next(iter(board.units.values()))
        axi_fault(unit, regmap.AXI_ERROR_READ, run=unit.runs)
        with pytest.raises(BoardError, match=r"^pynq:anole_scan_0: the kernel's AXI read \(.*\) got SLVERR/DECERR "
                                             r".*discarded: check the buffer placement") as e:
            b.search(queries, lists)
        assert "\n" not in str(e.value)
        assert b.devices[0].ip.read(regmap.AXI_ERROR) == regmap.AXI_ERROR_READ
        got = b.search(queries, lists)
        assert b.devices[0].ip.read(regmap.AXI_ERROR) == 0
    finally:
        b.close()
    want = ReferenceBackend(small_index, shard, p).search(queries, lists)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)


def test_pynq_refuses_other_kernels(overlay, small_index, tmp_path):
    p = ScanParams(m=small_index.m)
    shard = small_index.shards[0]
    moved = dict(regmap.hwh_register_names(), nprobe=0x58)
    for hwh, match in [(dict(registers=moved), "another register map.*nprobe at 0x58"),
                       (dict(vlnv="xilinx.com:hls:vadd:1.0"), "no anole_scan IP")]:
        with pytest.raises(BoardError, match=match):
            make_backend("pynq", small_index, shard, p, bitstream=overlay(1, **hwh), pynq_device=SimZynq(p))
    with pytest.raises(BoardError, match="built for"):            # right registers, other parameters
        b = make_backend("pynq", small_index, shard, ScanParams(m=small_index.m, k=20), bitstream=overlay(1),
                         pynq_device=SimZynq(p))
        b.search(np.zeros((1, small_index.d), np.float32), np.zeros((1, 1), np.int64))
    with pytest.raises(BoardError, match="cannot allocate .* for codes.*more shards"):
        make_backend("pynq", small_index, shard, p, bitstream=overlay(1), pynq_device=SimZynq(p, cma_bytes=4096))
    (tmp_path / "only.bit").write_bytes(b"\0")
    with pytest.raises(BoardError, match="needs both only.bit and only.hwh"):
        make_backend("pynq", small_index, shard, p, bitstream=str(tmp_path / "only.bit"), pynq_device=SimZynq(p))


@pytest.mark.sweep
def test_pynq_driver_on_the_rtl_kernel(overlay, small_index, small_data):
    """The real pynq driver path against the RTL kernel in simulation (what cocotbpynq aims at, with pynq's
    own Overlay/DefaultIP/MMIO): bit-exact with the reference. Minutes under Verilator, so in the sweep."""
    pytest.importorskip("cocotbext.axi", reason="the RTL board needs cocotbext-axi")
    _, queries = small_data
    queries = queries[:6]
    lists = small_index.coarse_search(queries, 4)
    p = ScanParams(m=small_index.m, k=10, lanes=4)            # the RTL build shared with test_board_rtl.py
    shard = small_index.shards[0]
    board = SimZynqRtl(p)
    b = make_backend("pynq", small_index, shard, p, bitstream=overlay(1, vlnv=regmap.RTL_VLNV), pynq_device=board)
    try:
        got = b.search(queries, lists)
    finally:
        b.close()
        board.rtl.close()
    want = ReferenceBackend(small_index, shard, p).search(queries, lists)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)
