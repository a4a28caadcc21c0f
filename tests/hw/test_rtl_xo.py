"""The RTL kernel's Vitis packaging inputs: kernel.xml argument kinds and VLNV, and package_xo.tcl run under
tclsh with Vivado's commands stubbed (FREQ_HZ on ap_clk, IP named by the VLNV, mismatch refused)."""
from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from host.spec import regmap
from host.spec.scan_params import ScanParams
from hw.flow.axi_verilog import kernel_xml
from hw.flow.rtl_xo import DEFAULT_CLOCK_HZ, TCL, regs_tcl


@pytest.fixture
def rtl(tmp_path):
    """The packaging inputs package_xo.tcl reads (what hw.flow.rtl_xo.prepare writes, without the Verilog)."""
    d = tmp_path / "rtl"
    d.mkdir()
    (d / "kernel.xml").write_text(kernel_xml(ScanParams(m=8, lanes=4, k=10)))
    (d / "regs.tcl").write_text(regs_tcl())
    return d


def test_kernel_xml_kinds_and_vlnv(rtl):
    kernel = ET.parse(rtl / "kernel.xml").getroot().find("kernel")
    assert kernel.get("vlnv") == regmap.RTL_VLNV and kernel.get("name") == regmap.KERNEL_NAME
    kinds = {a.get("name"): a.get("addressQualifier") for a in kernel.iter("arg")}
    assert kinds == {**{n: "1" for n in regmap.POINTER_ARGS}, **{n: "0" for n in regmap.SCALAR_ARGS},
                     "config": "0"}                          # XRT: 0 scalar, 1 global memory, 4 stream


STUB = r"""
rename exit ::tcl::exit_real
set ::log {}
proc unknown {args} { lappend ::log $args; return "obj" }
namespace eval ipx {}
proc ipx::get_bus_parameters {args} { lappend ::log [list ipx::get_bus_parameters {*}$args]; return "" }
proc get_property {name obj} {
    if {$name eq "VLNV"} { return $::vlnv_override }
    return ""
}
proc exit {code} { puts "EXIT $code"; foreach l $::log { puts $l }; ::tcl::exit_real $code }
"""


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("packaged,code", [(regmap.RTL_VLNV, 0), ("anole:kernel:anole_scan_axi:1.0", 1)])
def test_package_xo_tcl(packaged, code, rtl, tmp_path):
    script = (f"{STUB}\nset ::vlnv_override {packaged}\nset argv [list {rtl} {tmp_path}/a.xo {tmp_path}/pack]\n"
              f"set argc 3\nsource {TCL}\nexit 0\n")
    r = subprocess.run(["tclsh"], input=script, capture_output=True, text=True, timeout=30)
    assert f"EXIT {code}" in r.stdout, r.stdout + r.stderr
    vendor, library, name, version = regmap.RTL_VLNV.split(":")
    assert f"ipx::package_project -root_dir {tmp_path}/pack/ip -vendor {vendor} -library {library}" in r.stdout
    assert f"set_property name {name} obj" in r.stdout and f"set_property version {version} obj" in r.stdout
    assert "ipx::add_bus_parameter FREQ_HZ obj" in r.stdout
    assert f"set_property value {DEFAULT_CLOCK_HZ} obj" in r.stdout
    for reg, off in regmap.ARG_OFFSETS.items():
        assert re.search(rf"ipx::add_register -quiet {reg} obj\nset_property address_offset 0x{off:02X} obj",
                         r.stdout), reg
    if code:
        assert f"the IP was packaged as {packaged}" in r.stderr and "package_xo -force" not in r.stdout
    else:
        assert f"package_xo -force -xo_path {tmp_path}/a.xo -kernel_name {regmap.KERNEL_NAME}" in r.stdout
