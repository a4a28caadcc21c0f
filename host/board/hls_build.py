"""Builds the HLS kernel's C model with g++ (csim): the testbench `tb_scan` and `libanole_scan.so`.

Builds are cached per parameter set under build/hls/<tag>/ and rebuilt when a source changes.
"""
from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np

from host.board.hls_config import param_tag, write_header
from host.spec.errors import AnoleError
from host.spec.scan_params import ScanParams

ROOT = Path(__file__).resolve().parents[2]
HLS_DIR = ROOT / "hls"
BUILD_DIR = ROOT / "build" / "hls"
SOURCES = ["scan/scan.cpp", "scan/scan.h", "scan/scan_shim.cpp", "scan/tb_scan.cpp",
           "include/hls_types.h", "include/compat/ap_int.h", "include/compat/hls_stream.h"]
CXXFLAGS = ["-std=c++14", "-O2", "-fPIC", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-label"]


class CsimBuildError(AnoleError):
    """g++ is missing or the C model does not compile."""


def _stamp(params: ScanParams, cxx: str) -> str:
    h = hashlib.sha256(repr((params, cxx, CXXFLAGS)).encode())
    for src in SOURCES:
        h.update((HLS_DIR / src).read_bytes())
    return h.hexdigest()[:16]


def build_csim(params: ScanParams, build_root: Path = BUILD_DIR) -> Path:
    """Build (or reuse) tb_scan and libanole_scan.so for ``params``; returns their directory."""
    cxx = shutil.which("g++")
    if cxx is None:
        raise CsimBuildError("the HLS C simulation needs g++ (apt-get install g++)")
    out = Path(build_root) / param_tag(params)
    stamp = _stamp(params, cxx)
    if (out / ".stamp").is_file() and (out / ".stamp").read_text() == stamp:
        return out                          # built (the stamp is written last)
    from sim.build import build_lock  # lazy: sim.build needs cocotb_tools, which board images lack
    with build_lock(out):
        if (out / ".stamp").is_file() and (out / ".stamp").read_text() == stamp:
            return out
        write_header(params, out / "scan_config.h")
        inc = ["-I", str(out), "-I", str(HLS_DIR / "include"), "-I", str(HLS_DIR / "scan")]
        objs = []
        for src in ("scan.cpp", "scan_shim.cpp", "tb_scan.cpp"):
            obj = out / src.replace(".cpp", ".o")
            _run([cxx, *CXXFLAGS, *inc, "-c", str(HLS_DIR / "scan" / src), "-o", str(obj)])
            objs.append(str(obj))
        _run([cxx, "-shared", *objs[:2], "-o", str(out / "libanole_scan.so")])
        _run([cxx, *objs, "-o", str(out / "tb_scan")])
        (out / ".stamp").write_text(stamp)
    return out


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise CsimBuildError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")


def run_testbench(params: ScanParams, buffers: dict[str, np.ndarray], nq: int, nprobe: int,
                  workdir: Path) -> tuple[np.ndarray, int]:
    """Run tb_scan on kernel buffers (codes, ids, tables, lists: any dtype, raw bytes are used).

    Returns (results uint8[nq * k * 16], config word)."""
    exe = build_csim(params) / "tb_scan"
    workdir.mkdir(parents=True, exist_ok=True)
    blobs = [np.ascontiguousarray(buffers[n]).tobytes() for n in ("codes", "ids", "tables", "lists")]
    vin, vout = workdir / "tb_input.bin", workdir / "tb_output.bin"
    vin.write_bytes(b"ANOLETB1" + struct.pack("<II4Q", nq, nprobe, *map(len, blobs)) + b"".join(blobs))
    proc = subprocess.run([str(exe), str(vin), str(vout)], capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise CsimBuildError(f"tb_scan exited with {proc.returncode}: {proc.stderr.strip()}")
    raw = np.fromfile(vout, np.uint8)
    return raw[:-4], int(raw[-4:].view("<u4")[0])
