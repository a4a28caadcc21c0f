"""Verilog of the board kernel (`anole_scan_axi.v`), its description JSON and the Vitis `kernel.xml`."""
from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import quoteattr

from amaranth.back import verilog

from host.spec import regmap
from host.spec.scan_params import ScanParams
from hw.axi_control import ADDR_BITS
from hw.axi_kernel import CONTROL, AxiScanKernel, bundles

TOP = "anole_scan_axi"
DEFAULT_DATA_BITS = 128


def describe(params: ScanParams, data_bits: int = DEFAULT_DATA_BITS) -> dict:
    """Parameters, AXI interfaces and arguments of the kernel (what the bench and packaging read)."""
    return {"top": TOP, "kernel": regmap.KERNEL_NAME, "params": params.to_dict(), "data_bits": data_bits,
            "control": {"name": CONTROL, "addr_bits": ADDR_BITS, "offsets": regmap.ARG_OFFSETS},
            "m_axi": {b: {"data_bits": data_bits, "addr_bits": 64,
                          "args": [a for a, x in regmap.M_AXI_BUNDLES.items() if x == b]} for b in bundles()}}


def kernel_xml(params: ScanParams, data_bits: int = DEFAULT_DATA_BITS) -> str:
    """The `kernel.xml` of the Vitis RTL kernel (`package_xo -kernel_xml`): ports and arguments.

    addressQualifier is XRT's argument kind: 1 for the AXI4 master pointers, 0 for every scalar (a stream
    would be 4). The VLNV is the one package_xo.tcl gives the packaged IP (host/spec/regmap.py RTL_VLNV)."""
    ports = [f'      <port name="{CONTROL}" mode="slave" range="0x{regmap.ADDR_SPACE:X}" dataWidth="32" '
             f'portType="addressable" base="0x0"/>']
    ports += [f'      <port name="m_axi_{b}" mode="master" range="0xFFFFFFFFFFFFFFFF" dataWidth="{data_bits}" '
              f'portType="addressable" base="0x0"/>' for b in bundles()]
    args = []
    for name, index in regmap.ARG_INDEX.items():
        off = regmap.ARG_OFFSETS[name]
        if name in regmap.POINTER_ARGS:
            port, size, kind, typ = f"m_axi_{regmap.M_AXI_BUNDLES[name]}", 8, 1, "void*"
        else:
            port, size, kind, typ = CONTROL, 4, 0, "uint"        # scalars (inputs and `config`) are 0
        args.append(f'      <arg name={quoteattr(name)} addressQualifier="{kind}" id="{index}" port="{port}" '
                    f'size="0x{size:X}" offset="0x{off:X}" hostOffset="0x0" hostSize="0x{size:X}" type="{typ}"/>')
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<root versionMajor="1" versionMinor="6">',
        f'  <kernel name="{regmap.KERNEL_NAME}" language="ip_c" vlnv="{regmap.RTL_VLNV}" '
        'attributes="" preferredWorkGroupSizeMultiple="0" workGroupSize="1" interrupt="true" hwControlProtocol="ap_ctrl_hs">',
        "    <ports>", *ports, "    </ports>",
        "    <args>", *args, "    </args>",
        "  </kernel>", "</root>", ""])


def emit_axi(params: ScanParams, out_dir: str | Path, data_bits: int = DEFAULT_DATA_BITS) -> dict[str, Path]:
    """Write `anole_scan_axi.v`, `anole_scan_axi.json` and `kernel.xml` under ``out_dir``; returns the paths.

    Files are rewritten only when their content changes, so simulator builds stay cached."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = verilog.convert(AxiScanKernel(params=params, data_bits=data_bits), name=TOP, emit_src=False)
    files = {"verilog": (out / f"{TOP}.v", text),
             "json": (out / f"{TOP}.json", json.dumps(describe(params, data_bits), indent=2) + "\n"),
             "kernel_xml": (out / "kernel.xml", kernel_xml(params, data_bits))}
    for path, content in files.values():
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
    return {k: path for k, (path, _) in files.items()}
