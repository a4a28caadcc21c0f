"""Run by test_board_install.py in a venv holding numpy only: the board-side path end to end.

argv: index dir, shard, stand-in xclbin, output .npz. Runs `anole board selftest` on the xrt backend, then
the memory node with the xrt backend, on the pyxrt stand-in (HLS C model units, prebuilt), and writes the
node's results plus the heavy modules seen.
"""
import sys

import numpy as np

from host.backends.board_backend import HAVE_NUMBA
from host.board import pyxrt_standin
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.scan_params import ScanParams

index_dir, shard, xclbin, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.modules["pyxrt"] = pyxrt_standin.as_module()
from host.cli import main  # noqa: E402

rc = main(["board", "selftest", "--index", index_dir, "--shard", str(shard), "--backend", "xrt", "--xclbin", xclbin,
           "--queries", "8", "--nprobe", "4", "--params", "k=10"])
assert rc == 0, rc
cfg = MemoryNodeConfig(backend="xrt", threads=2, backend_options={"xclbin": xclbin})
node = MemoryNode.open(index_dir, shard, lut_bits=16, k=10, config=cfg)
assert node.params == ScanParams(m=node.index.m, lut_bits=16, k=10)
queries = np.load(out + ".in.npy")
lists = np.load(out + ".lists.npy")
res = node.backend.search(queries, lists)
heavy = [m for m in ("faiss", "numba", "torch", "amaranth", "cocotb", "cocotb_tools", "scipy") if m in sys.modules]
np.savez(out, dist=res.dist, ids=res.ids, scale=res.scale, heavy=np.array(heavy, dtype=object),
         units=len(node.backend.devices), numba=HAVE_NUMBA)
