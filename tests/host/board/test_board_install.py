"""The board-side install: Python 3.10 syntax and stdlib (vermin), and the memory node and `anole board
selftest` with a board backend running in a venv that holds numpy only (no faiss, numba, torch, amaranth,
cocotb)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host.backends.reference_backend import ReferenceBackend
from host.board import pyxrt_standin
from host.board.hls_build import build_csim
from host.spec.scan_params import ScanParams

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ["host", "hw", "sim", "llm_node", "scripts", "hls"]


def test_code_is_python_310():
    """requires-python >= 3.10: PYNQ 3.0.1/3.1 images and Ubuntu 22.04's pyxrt are Python 3.10 (board side
    and everything else; no 3.10 interpreter can be installed here, so this is checked statically)."""
    vermin = Path(sys.executable).with_name("vermin")
    r = subprocess.run([str(vermin), "--target=3.10-", "--no-tips", "--violations",
                        "--eval-annotations", *PACKAGES], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def numpy_only_python(tmp_path) -> Path:
    """A venv (no pip) whose site-packages holds only the numpy this interpreter uses."""
    venv = tmp_path / "board-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next(venv.glob("lib/python*/site-packages"))
    src = Path(np.__file__).parent
    for path in [src, *src.parent.glob("numpy.libs")]:
        (site / path.name).symlink_to(path)
    return venv / "bin" / "python"


def test_memory_node_on_a_numpy_only_board(numpy_only_python, small_index, small_data, tmp_path):
    _, queries = small_data
    queries = queries[:12]
    lists = small_index.coarse_search(queries, 4)
    params = ScanParams(m=small_index.m, lut_bits=16, k=10)
    build_csim(params)                       # the stand-in card's units run the prebuilt C model
    xclbin = pyxrt_standin.write_xclbin(tmp_path / "a.xclbin", ROOT / "hls/link/u250.cfg", params, "u250")
    out = tmp_path / "res.npz"
    np.save(f"{out}.in.npy", queries)
    np.save(f"{out}.lists.npy", lists)
    r = subprocess.run([str(numpy_only_python), str(ROOT / "tests/host/board/board_side_check.py"),
                        str(small_index.path), "0", str(xclbin), str(out)],
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "board selftest xrt/board on 4 compute unit(s)" in r.stdout and "bit-exact" in r.stdout
    got = np.load(out, allow_pickle=True)
    assert list(got["heavy"]) == [] and not got["numba"] and int(got["units"]) == 4
    want = ReferenceBackend(small_index, small_index.shards[0], params).search(queries, lists)
    np.testing.assert_array_equal(got["ids"], want.ids)
    np.testing.assert_array_equal(got["dist"], want.dist)
    np.testing.assert_array_equal(got["scale"], want.scale)
