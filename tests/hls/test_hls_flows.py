"""Vendor flows as scripts: missing tools fail first and clearly; generated and static files agree with
ScanParams and host/spec/regmap.py; the Makefile drives stand-in tools with the right arguments."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from host.board.hls_config import header_text
from host.spec import regmap
from host.spec.scan_params import ScanParams

ROOT = Path(__file__).resolve().parents[2]
HLS = ROOT / "hls"
BARE_PATH = "/usr/bin:/bin"


def make(*args, path=BARE_PATH, **env):
    e = {**os.environ, "PATH": path, **env}
    return subprocess.run(["make", "-s", "-C", str(HLS), *args], capture_output=True, text=True, env=e, timeout=60)


def fake_hw_header(offsets: dict[str, int]) -> str:
    """What Vitis HLS writes to xanole_scan_hw.h, with the given offsets."""
    lines = [f"#define XANOLE_SCAN_CONTROL_ADDR_{k} 0x{v:x}" for k, v in offsets.items()]
    return "// fake\n" + "\n".join(lines) + "\n#define XANOLE_SCAN_CONTROL_BITS_CODES_DATA 64\n"


def good_offsets() -> dict[str, int]:
    sys.path.insert(0, str(HLS))
    import check_regmap
    return check_regmap.expected()


@pytest.mark.parametrize("target,extra,tool,words", [
    ("csynth", [], "vitis_hls", "Vitis 2023.2"),
    ("xo", ["PLATFORM=xilinx_u280_gen3x16_xdma_1_202211_1"], "v++", "XRT"),
    ("link", ["PLATFORM=xilinx_u55c_gen3x16_xdma_3_202210_1"], "v++", "XRT"),
    ("overlay", ["BOARD=pynq-z2"], "vivado", "Vivado 2023.2"),
])
def test_missing_tool_fails_first(target, extra, tool, words):
    assert shutil.which(tool, path=BARE_PATH) is None
    r = make(target, *extra)
    assert r.returncode != 0
    assert f"'{tool}' not found" in r.stderr and words in r.stderr
    assert not (ROOT / "build/hls/m16_l4_b16_k10_i32/u280/anole_scan.xo").exists()


@pytest.fixture
def fake_tools(tmp_path):
    """vitis_hls / v++ / vivado stand-ins that log their arguments; vitis_hls writes the driver header."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    hdr = tmp_path / "hw.h"
    hdr.write_text(fake_hw_header(good_offsets()))
    drv = "anole_scan_prj/solution/impl/misc/drivers/anole_scan_v1_0/src"
    scripts = {
        "vitis_hls": f'echo "vitis_hls $*" >> {tmp_path}/log; env | grep ^ANOLE_ >> {tmp_path}/log\n'
                     f'mkdir -p {drv} && cp {hdr} {drv}/xanole_scan_hw.h',
        "v++": f'echo "v++ $*" >> {tmp_path}/log',
        "vivado": f'echo "vivado $*" >> {tmp_path}/log',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir, tmp_path / "log", hdr


def test_flows_drive_the_tools(fake_tools):
    bin_dir, log, hdr = fake_tools
    path = f"{bin_dir}:{BARE_PATH}"
    r = make("csynth", "BOARD=kv260", "PARAMS=m=8 k=20", path=path)
    assert r.returncode == 0, r.stderr
    text = log.read_text()
    assert "ANOLE_PART=xck26-sfvc784-2LV-c" in text and "ANOLE_CLOCK_MHZ=200" in text
    assert "matches host/spec/regmap.py" in r.stdout
    assert "#define ANOLE_K 20" in (ROOT / "build/hls/m8_l4_b16_k20_i32/scan_config.h").read_text()

    r = make("xo", path=path)
    assert r.returncode != 0 and "PLATFORM is required" in r.stderr
    r = make("link", "PLATFORM=xilinx_u250_gen3x16_xdma_4_1_202210_1", path=path)
    assert r.returncode == 0, r.stderr
    vpp = [line for line in log.read_text().splitlines() if line.startswith("v++")]
    assert "-c -t hw" in vpp[0] and "-k anole_scan" in vpp[0] and "--hls.clock 300000000:anole_scan" in vpp[0]
    assert "-l -t hw" in vpp[1] and str(HLS / "link/u250.cfg") in vpp[1]

    r = make("overlay", "BOARD=pynq-z2", path=path)
    assert r.returncode == 0, r.stderr
    viv = [line for line in log.read_text().splitlines() if line.startswith("vivado")][0]
    assert "anole_overlay.tcl -tclargs pynq-z2 xc7z020clg400-1" in viv and viv.endswith(" 100")
    r = make("overlay", "BOARD=u280", path=path)
    assert r.returncode != 0 and "BOARD must be one of" in r.stderr

    off = good_offsets()
    off["NPROBE_DATA"] += 4
    hdr.write_text(fake_hw_header(off))                    # the synthesized map moved: csynth must fail
    r = make("csynth", path=path)
    assert r.returncode != 0 and "NPROBE_DATA: generated at 0x58, driver expects 0x54" in r.stderr


@pytest.mark.parametrize("p", [ScanParams(), ScanParams(m=32, lanes=8, lut_bits=12, k=100, id_bits=64)])
def test_header_is_derived_from_scan_params(p):
    consts = {m.group(1): int(m.group(2)) for m in
              re.finditer(r"#define (ANOLE_\w+) (\d+)u?", header_text(p))}
    assert (consts["ANOLE_M"], consts["ANOLE_LANES"], consts["ANOLE_LUT_BITS"], consts["ANOLE_K"],
            consts["ANOLE_ID_BITS"], consts["ANOLE_DIST_BITS"]) == (p.m, p.lanes, p.lut_bits, p.k, p.id_bits,
                                                                    p.dist_bits)
    assert consts["ANOLE_EMPTY_DIST"] == (1 << p.dist_bits) - 1
    src = (HLS / "scan/scan.cpp").read_text() + (HLS / "scan/scan.h").read_text()
    assert not re.search(r"\b(M|LANES|LUT_BITS|K|ID_BITS|DIST_BITS)\s*=\s*\d", src)   # nothing restated


def test_kernel_interface_matches_regmap():
    """Argument order (register offsets) and m_axi bundles of scan.cpp are those of host/spec/regmap.py."""
    src = (HLS / "scan/scan.cpp").read_text()
    sig = re.search(r'extern "C" void anole_scan\(([^)]*)\)', src).group(1)
    args = [re.findall(r"\w+", a)[-1] for a in sig.split(",")]
    assert args == list(regmap.POINTER_ARGS + regmap.SCALAR_ARGS + regmap.OUTPUT_ARGS)
    bundles = dict(re.findall(r"m_axi port = (\w+) offset = slave bundle = (\w+)", src))
    assert bundles == regmap.M_AXI_BUNDLES
    assert set(re.findall(r"s_axilite port = (\w+) bundle = control", src)) == set(args) | {"return"}
    assert "ap_ctrl_hs port = return" in src


@pytest.mark.parametrize("card", ["u250", "u280", "u55c"])
def test_link_configs_connect_every_port(card):
    text = (HLS / f"link/{card}.cfg").read_text()
    sp = dict(re.findall(r"^sp=anole_scan_1\.(\w+):(\S+)$", text, re.M))
    assert set(sp) == set(regmap.POINTER_ARGS)
    assert re.search(r"^nk=anole_scan:1:anole_scan_1$", text, re.M)
    bank_of_bundle = {}
    for arg, bundle in regmap.M_AXI_BUNDLES.items():
        assert bank_of_bundle.setdefault(bundle, sp[arg]) == sp[arg], f"{bundle} spans two banks"
        assert sp[arg].startswith("HBM[" if card != "u250" else "DDR[")


STUB = r"""
set ::log {}
proc unknown {args} { lappend ::log $args; return "" }
proc get_property {name args} { if {$name eq "PROGRESS"} { return 100% }; return $::impl }
proc get_files {args} { return $::out/anole.bd }
proc exit {code} { puts "EXIT $code"; foreach l $::log { puts $l }; ::tcl::exit_real $code }
"""


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("board,part", [("pynq-z2", "xc7z020clg400-1"), ("zcu104", "xczu7ev-ffvc1156-2-e"),
                                        ("kv260", "xck26-sfvc784-2LV-c")])
def test_overlay_tcl_block_design(board, part, tmp_path):
    """Run the block-design Tcl under tclsh with Vivado's commands stubbed: every m_axi bundle reaches its
    own high-performance port, the control slave the PS master, and .bit + .hwh land in OUT_DIR."""
    out, ip = tmp_path / "out", tmp_path / "ip"
    impl = tmp_path / "impl"
    for d in (ip, impl, out / "vivado/anole_overlay.gen/sources_1/bd/anole/hw_handoff"):
        d.mkdir(parents=True)
    (impl / "anole_wrapper.bit").write_bytes(b"bit")
    (out / "vivado/anole_overlay.gen/sources_1/bd/anole/hw_handoff/anole.hwh").write_text("hwh")
    script = (f"rename exit ::tcl::exit_real\n{STUB}\nset ::impl {impl}\nset ::out {out}\n"
              f"set argv [list {board} {part} {ip} {out} 100]\nset argc 5\n"
              f"source {HLS / 'pynq/anole_overlay.tcl'}\nexit 0\n")
    r = subprocess.run(["tclsh"], input=script, capture_output=True, text=True, timeout=30)
    assert "EXIT 0" in r.stdout, r.stdout + r.stderr
    assert f"create_project -force anole_overlay {out}/vivado -part {part}" in r.stdout
    bundles = sorted(set(regmap.M_AXI_BUNDLES.values()))
    masters = re.findall(r"Master /anole_scan_0/m_axi_(\w+) Slave (\S+)", r.stdout)
    assert sorted(b for b, _ in masters) == bundles and len({hp for _, hp in masters}) == len(bundles)
    assert "Slave /anole_scan_0/s_axi_control" in r.stdout
    assert (out / "anole.bit").read_bytes() == b"bit" and (out / "anole.hwh").read_text() == "hwh"
