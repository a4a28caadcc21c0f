"""`anole board ...`: the FPGA kernel's C simulation, its parameter header, and a board self-test."""
from __future__ import annotations

import numpy as np

from host.backends import make_backend
from host.board.csim_check import check
from host.board.hls_config import parse_params, write_header
from host.cli.common import group
from host.index.index_dir import load_index
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams


def register(sub, groups):
    g = group(sub, groups, "board", "FPGA boards: HLS C simulation, kernel header, board self-test")
    p = g.add_parser("csim", help="randomized C simulation of the HLS kernel vs the reference model",
                     description="Build the HLS kernel's C model with g++ (cached under build/hls/) and check "
                                 "random scans bit for bit against host.spec.reference.")
    p.add_argument("params", nargs="*", help="ScanParams fields as NAME=INT (m, lanes, lut_bits, k, id_bits)")
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--nprobe", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=csim)

    p = g.add_parser("header", help="write the HLS parameter header scan_config.h",
                     description="Write scan_config.h for the given ScanParams (what `make -C hls` uses).")
    p.add_argument("params", nargs="*", help="ScanParams fields as NAME=INT")
    p.add_argument("--out", required=True, help="header file to write")
    p.set_defaults(func=header)

    p = g.add_parser("selftest", help="search one shard through a board backend and compare with the reference",
                     description="Open the pynq or xrt backend on one shard of an index (on the board, or "
                                 "--device csim for the virtual board), run random queries and check ids and "
                                 "distances bit for bit against the reference backend.")
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--backend", choices=["pynq", "xrt"], default="pynq")
    p.add_argument("--device", choices=["board", "csim", "rtl"], default="board",
                   help="board (default), or a virtual board: csim (HLS C model), rtl (Verilator)")
    p.add_argument("--cus", type=int, default=0,
                   help="compute units (default: every unit of the board; 1 on a virtual board)")
    p.add_argument("--bitstream", help="pynq: overlay .bit (its .hwh beside it)")
    p.add_argument("--xclbin", help="xrt: kernel .xclbin")
    p.add_argument("--params", nargs="*", default=[], help="ScanParams fields as NAME=INT (m comes from the index)")
    p.add_argument("--queries", type=int, default=32)
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=selftest)


def csim(args) -> int:
    for name in ("queries", "nprobe"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, not {getattr(args, name)}")
    params = parse_params(args.params)
    bad = check(params, args.queries, args.nprobe, args.seed)
    print(f"board csim {params}: {args.queries} queries x {args.nprobe} probes, {bad} mismatches")
    return 1 if bad else 0


def header(args) -> int:
    print(f"wrote {write_header(parse_params(args.params), args.out)}")
    return 0


def nearest_lists(centroids: np.ndarray, queries: np.ndarray, nprobe: int) -> np.ndarray:
    """The ``nprobe`` nearest lists of each query by exact L2 in numpy (no faiss on a board image)."""
    d = np.einsum("qd,qd->q", queries, queries)[:, None] - 2 * queries @ centroids.T + \
        np.einsum("cd,cd->c", centroids, centroids)[None]
    return np.argsort(d, axis=1, kind="stable")[:, :nprobe].astype(np.int64)


def selftest(args) -> int:
    import time

    index = load_index(args.index, shards=[args.shard])
    fields = parse_params(args.params).to_dict()
    fields["m"] = index.m
    params = ScanParams.from_dict(fields)
    options = {"device": args.device, "cus": args.cus}
    if args.device == "board":
        options.update({"bitstream": args.bitstream} if args.backend == "pynq" else {"xclbin": args.xclbin})
    rng = np.random.default_rng(args.seed)
    centre = index.centroids[rng.integers(0, index.nlist, args.queries)]
    queries = (centre + rng.normal(0, 0.1, centre.shape) * np.abs(centre).mean()).astype(np.float32)
    lists = nearest_lists(index.centroids, queries, min(args.nprobe, index.nlist))
    shard = index.shards[0]
    board = make_backend(args.backend, index, shard, params, **options)
    try:
        t0 = time.perf_counter()
        got = board.search(queries, lists)
        elapsed = time.perf_counter() - t0
    finally:
        board.close()
    want = make_backend("reference", index, shard, params).search(queries, lists)
    same = np.array_equal(got.ids, want.ids) and np.array_equal(got.dist, want.dist)
    print(f"board selftest {args.backend}/{args.device} on {len(board.devices)} compute unit(s): "
          f"{args.queries} queries, {params}: "
          f"{'bit-exact with the reference' if same else 'MISMATCH against the reference'} "
          f"({args.queries / elapsed:,.0f} QPS)")
    return 0 if same else 1
