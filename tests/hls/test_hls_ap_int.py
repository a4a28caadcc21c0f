"""The ap_int width rules of Vitis HLS: the stand-in header refuses what Xilinx's refuses, the kernel
sets AP_INT_MAX_W for its wide words, and the header generator rejects what no AP_INT_MAX_W allows."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from host.board.hls_build import HLS_DIR
from host.board.hls_config import header_text
from host.spec.errors import InputError
from host.spec.layout import AP_INT_LIMIT_W, KernelLayout
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def compile_width(width: int, max_w: int | None, tmp_path) -> subprocess.CompletedProcess:
    src = tmp_path / "w.cpp"
    define = "" if max_w is None else f"#define AP_INT_MAX_W {max_w}\n"
    src.write_text(f'{define}#include "compat/ap_int.h"\nap_uint<{width}> x;\n')
    return subprocess.run(["g++", "-std=c++14", "-fsyntax-only", "-I", str(HLS_DIR / "include"), str(src)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("width, max_w, ok", [(1024, None, True), (1536, None, False), (1536, 2048, True),
                                              (4096, 4096, True), (4097, 4096, False), (64, 8192, False)])
def test_stand_in_enforces_ap_int_max_w(width, max_w, ok, tmp_path):
    proc = compile_width(width, max_w, tmp_path)
    assert (proc.returncode == 0) == ok, proc.stderr
    if not ok:
        assert "AP_INT_MAX_W" in proc.stderr


@pytest.mark.parametrize("p, bits", [(ScanParams(m=24, lanes=8), 1536), (ScanParams(m=16, lanes=16), 2048),
                                     (ScanParams(m=4, lanes=1), 128), (ScanParams(m=64, lanes=1), 1024),
                                     (ScanParams(m=64, lanes=8), 4096)])
def test_word_bits_and_header(p, bits):
    """The widest word is the code beat (8 x m x lanes) or a 128-bit result; the header states it."""
    assert KernelLayout(p).word_bits == max(8 * p.m * p.lanes, 128, 16 * p.m,
                                            p.lanes * (32 if p.id_bits <= 32 else 64)) == bits
    assert f"#define ANOLE_WORD_BITS {bits}\n" in header_text(p)


@pytest.mark.parametrize("p", [ScanParams(m=64, lanes=16), ScanParams(m=33, lanes=16)])
def test_too_wide_for_vitis_is_rejected(p):
    assert 8 * p.m * p.lanes > AP_INT_LIMIT_W
    with pytest.raises(InputError, match="m x lanes <= 512"):
        header_text(p)
