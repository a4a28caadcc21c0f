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
    e = {**os.environ, "PATH": path, "PYTHON": sys.executable, **env}
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
    ("emu", ["PLATFORM=xilinx_u250_gen3x16_xdma_4_1_202210_1"], "emconfigutil", "XRT"),
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
        "v++": f'echo "v++ $*" >> {tmp_path}/log\n'      # v++ -c leaves the HLS project in --temp_dir
               f'case "$*" in *"-c "*) t=$(echo "$*" | sed "s/.*--temp_dir \\([^ ]*\\).*/\\1/"); '
               f'mkdir -p $t/{drv} && cp {hdr} $t/{drv}/xanole_scan_hw.h;; esac',
        "vivado": f'echo "vivado $*" >> {tmp_path}/log',
        "emconfigutil": f'echo "emconfigutil $*" >> {tmp_path}/log',
    }
    for name, body in scripts.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir, tmp_path / "log", hdr


def test_flows_drive_the_tools(fake_tools, small_index):
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
    u250 = "PLATFORM=xilinx_u250_gen3x16_xdma_4_1_202210_1"
    r = make("link", u250, path=path)
    assert r.returncode == 0, r.stderr
    assert "/u250/_x/" in r.stdout and "matches host/spec/regmap.py" in r.stdout          # checked after v++ -c
    vpp = [line for line in log.read_text().splitlines() if line.startswith("v++")]
    assert "-c -t hw" in vpp[0] and "-k anole_scan" in vpp[0] and "--hls.clock 300000000:anole_scan" in vpp[0]
    assert "-l -t hw" in vpp[1] and str(HLS / "link/u250.cfg") in vpp[1] and "anole_scan.link.xclbin" in vpp[1]
    assert vpp[2].startswith("v++ -p -t hw") and "--package.out_dir" in vpp[2] and vpp[2].endswith(".link.xclbin")

    r = make("emu", u250, path=path)
    assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    assert "-c -t hw_emu" in [x for x in lines if x.startswith("v++")][3]
    emu = [x for x in lines if x.startswith("emconfigutil")][0]
    assert "--platform xilinx_u250_gen3x16_xdma_4_1_202210_1 --od" in emu and emu.endswith("/u250-hw_emu")
    assert "XCL_EMULATION_MODE=hw_emu" in r.stdout
    r = make("emu", u250, f"INDEX={small_index.path}", path=path)     # the selftest runs, pyxrt is missing
    assert r.returncode != 0 and "anole: error:" in r.stderr and "pyxrt" in r.stderr
    r = make("xo", u250, "TARGET=sw_emu", path=path)
    assert r.returncode != 0 and "TARGET must be hw or hw_emu" in r.stderr

    r = make("overlay", "BOARD=pynq-z2", path=path)
    assert r.returncode == 0, r.stderr
    viv = [line for line in log.read_text().splitlines() if line.startswith("vivado")][0]
    assert "anole_overlay.tcl -tclargs pynq-z2 xc7z020clg400-1 tul.com.tw:pynq-z2:part0:1.0 " in viv
    assert "/pynq-z2/anole_scan_prj/solution/impl/ip " in viv and viv.endswith(" 100")
    r = make("overlay", "BOARD=u280", path=path)
    assert r.returncode != 0 and "BOARD must be one of" in r.stderr

    off = good_offsets()
    off["NPROBE_DATA"] += 4
    hdr.write_text(fake_hw_header(off))                    # the synthesized map moved: every target fails
    for target in [("csynth",), ("xo", u250)]:
        r = make(*target, path=path)
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


@pytest.mark.parametrize("card,cus", [("u250", 4), ("u280", 8), ("u55c", 8)])
def test_link_configs_give_each_unit_its_own_channels(card, cus):
    """nk= names N units; every pointer argument of every unit is connected; on U250 each unit has one DDR4
    channel of its own, on HBM cards each AXI port (bundle) of each unit one pseudo-channel of its own."""
    text = (HLS / f"link/{card}.cfg").read_text()
    names = [f"anole_scan_{i + 1}" for i in range(cus)]
    assert re.search(rf"^nk=anole_scan:{cus}:{'.'.join(names)}$", text, re.M)
    sp = re.findall(r"^sp=(\w+)\.(\w+):(\w+\[\d+\])$", text, re.M)
    assert {(cu, arg) for cu, arg, _ in sp} == {(cu, arg) for cu in names for arg in regmap.POINTER_ARGS}
    owner = {}
    for cu, arg, bank in sp:
        port = cu if card == "u250" else (cu, regmap.M_AXI_BUNDLES[arg])
        assert owner.setdefault(bank, port) == port, f"{bank} shared by {owner[bank]} and {port}"
        assert bank.startswith("DDR[" if card == "u250" else "HBM[")
    assert len(owner) == (cus if card == "u250" else cus * len(set(regmap.M_AXI_BUNDLES.values())))


def test_kernel_vlnvs_agree():
    """The overlay instantiates the IP that hls.tcl exports; both are regmap.HLS_VLNV (pynq binds to it)."""
    vendor, library, name, version = regmap.HLS_VLNV.split(":")
    assert name == regmap.KERNEL_NAME
    assert f"set kernel_vlnv {regmap.HLS_VLNV}\n" in (HLS / "pynq/anole_overlay.tcl").read_text()
    assert f"-vendor {vendor} -library {library} -version {version}" in (HLS / "scan/hls.tcl").read_text()


STUB = r"""
set ::log {}
proc unknown {args} { lappend ::log $args; return "" }
proc get_property {name args} { if {$name eq "PROGRESS"} { return 100% }; return $::impl }
proc get_files {args} { return $::out/anole.bd }
proc get_board_parts {args} { return $::parts }
proc exit {code} { puts "EXIT $code"; foreach l $::log { puts $l }; ::tcl::exit_real $code }
"""


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh not installed")
@pytest.mark.parametrize("board,part,board_part", [
    ("pynq-z2", "xc7z020clg400-1", "tul.com.tw:pynq-z2:part0:1.0"),
    ("zcu104", "xczu7ev-ffvc1156-2-e", "xilinx.com:zcu104:part0:1.1"),
    ("kv260", "xck26-sfvc784-2LV-c", "xilinx.com:kv260_som:part0:1.4")])
def test_overlay_tcl_block_design(board, part, board_part, tmp_path):
    """Run the block-design Tcl under tclsh with Vivado's commands stubbed: every m_axi bundle reaches its
    own high-performance port, the control slave the PS master, and .bit + .hwh land in OUT_DIR."""
    out, ip = tmp_path / "out", tmp_path / "ip"
    impl = tmp_path / "impl"
    for d in (ip, impl, out / "vivado/anole_overlay.gen/sources_1/bd/anole/hw_handoff"):
        d.mkdir(parents=True)
    (impl / "anole_wrapper.bit").write_bytes(b"bit")
    (out / "vivado/anole_overlay.gen/sources_1/bd/anole/hw_handoff/anole.hwh").write_text("hwh")
    assert board_part in (HLS / "boards.mk").read_text()

    def run(installed):
        script = (f"rename exit ::tcl::exit_real\n{STUB}\nset ::impl {impl}\nset ::out {out}\n"
                  f"set ::parts {{{installed}}}\nset argv [list {board} {part} {board_part} {ip} {out} 100]\n"
                  f"set argc 6\nsource {HLS / 'pynq/anole_overlay.tcl'}\nexit 0\n")
        return subprocess.run(["tclsh"], input=script, capture_output=True, text=True, timeout=30)

    r = run("")
    assert "EXIT 2" in r.stdout and f"no board files for {board_part}" in r.stderr
    r = run(board_part)
    assert "EXIT 0" in r.stdout, r.stdout + r.stderr
    assert f"create_project -force anole_overlay {out}/vivado -part {part}" in r.stdout
    assert f"set_property board_part {board_part}" in r.stdout
    bundles = sorted(set(regmap.M_AXI_BUNDLES.values()))
    masters = re.findall(r"Master /anole_scan_0/m_axi_(\w+) Slave (\S+)", r.stdout)
    assert sorted(b for b, _ in masters) == bundles and len({hp for _, hp in masters}) == len(bundles)
    assert "Slave /anole_scan_0/s_axi_control" in r.stdout
    assert (out / "anole.bit").read_bytes() == b"bit" and (out / "anole.hwh").read_text() == "hwh"
