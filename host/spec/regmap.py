"""AXI4-Lite register map of the scan kernel (docs/board-interface.md): the one definition.

The HLS kernel (hls/scan/scan.cpp, Vitis HLS `s_axilite` + `ap_ctrl_hs`) produces this map from its
argument order; `hls/check_regmap.py` compares it with the `x<kernel>_hw.h` that csynth writes. The RTL
AXI wrapper implements the same map. All registers are 32 bits wide and 4-byte aligned.
"""
from __future__ import annotations

KERNEL_NAME = "anole_scan"

CTRL = 0x00
"""ap_ctrl_hs control: bit 0 ap_start (R/W, self-clearing), 1 ap_done (R/COR), 2 ap_idle (R),
3 ap_ready (R/COR), 7 auto_restart (R/W)."""
GIE = 0x04
"""Global interrupt enable: bit 0."""
IER = 0x08
"""IP interrupt enable: bit 0 ap_done, bit 1 ap_ready."""
ISR = 0x0C
"""IP interrupt status: bit 0 ap_done, bit 1 ap_ready (R/TOW: writing 1 toggles)."""

AP_START = 1 << 0
AP_DONE = 1 << 1
AP_IDLE = 1 << 2
AP_READY = 1 << 3
AUTO_RESTART = 1 << 7

POINTER_ARGS = ("codes", "ids", "tables", "lists", "results")
"""64-bit buffer addresses, in argument order: data[31:0] at the offset, data[63:32] at offset + 4."""
SCALAR_ARGS = ("nq", "nprobe")
"""32-bit inputs, in argument order after the pointers."""
OUTPUT_ARGS = ("config",)
"""32-bit outputs: data at the offset, ap_vld (bit 0, R/COR) at offset + 4."""

ARG_OFFSETS = {
    "codes": 0x10, "ids": 0x1C, "tables": 0x28, "lists": 0x34, "results": 0x40,
    "nq": 0x4C, "nprobe": 0x54, "config": 0x5C,
}
"""Vitis HLS spacing: a pointer takes 12 bytes (lo, hi, reserved), a scalar 8 (data, reserved)."""
CONFIG_CTRL = ARG_OFFSETS["config"] + 4
AXI_ERROR = 0x70
"""RTL kernel only (Vitis HLS has no such register): sticky AXI error responses of the current or last run,
cleared when a run starts. Bit 0: a read burst beat answered SLVERR or DECERR (`rresp[1]`) on any master;
bit 1: a write answered SLVERR or DECERR (`bresp[1]`). The run goes on (the beat's data is used as it
came), so results of a run with a bit set are not to be trusted."""
AXI_ERROR_READ = 1 << 0
AXI_ERROR_WRITE = 1 << 1
ADDR_SPACE = 0x80
"""Bytes of AXI4-Lite address space decoded by the kernel (7 address bits)."""

ARG_INDEX = {name: i for i, name in enumerate(POINTER_ARGS + SCALAR_ARGS + OUTPUT_ARGS)}
"""Kernel argument numbers (XRT `kernel.group_id(n)`, `xrt::kernel` argument order)."""

M_AXI_BUNDLES = {"codes": "gmem0", "ids": "gmem1", "tables": "gmem2", "lists": "gmem3", "results": "gmem3"}
"""AXI4 master interface of each pointer argument (`m_axi_<bundle>` ports, link configs, block designs)."""


def _check_offsets() -> None:
    off = 0x10
    for name in POINTER_ARGS:
        assert ARG_OFFSETS[name] == off, name
        off += 12
    for name in SCALAR_ARGS + OUTPUT_ARGS:
        assert ARG_OFFSETS[name] == off, name
        off += 8
    assert off <= ADDR_SPACE


_check_offsets()

HLS_VLNV = f"xilinx.com:hls:{KERNEL_NAME}:1.0"
"""VLNV of the HLS kernel as `export_design -format ip_catalog` packages it (PYNQ overlays bind by it)."""
RTL_VLNV = f"anole:kernel:{KERNEL_NAME}:1.0"
"""VLNV of the RTL kernel as hw/flow/vitis/package_xo.tcl packages it; kernel.xml names the same."""


def hwh_register_names() -> dict[str, int]:
    """{register name: offset} as Vivado's hardware handoff (.hwh) names the slave's registers (what
    pynq's `register_map` exposes): CTRL, GIER, IP_IER, IP_ISR, <pointer>_1/_2, <scalar>, config_ctrl."""
    names = {"CTRL": CTRL, "GIER": GIE, "IP_IER": IER, "IP_ISR": ISR}
    for name in POINTER_ARGS:
        names[f"{name}_1"] = ARG_OFFSETS[name]
        names[f"{name}_2"] = ARG_OFFSETS[name] + 4
    for name in SCALAR_ARGS + OUTPUT_ARGS:
        names[name] = ARG_OFFSETS[name]
    names["config_ctrl"] = CONFIG_CTRL
    return names
