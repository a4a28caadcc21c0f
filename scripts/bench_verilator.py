"""Verilator backend speed: simulated kernel cycles per second of the C++ harness on a real shard, the
core's codes/cycle on long lists (table loads included), and the projected FPGA scan time.

The baseline in the same run is the cpu backend on the same queries (host time per code); the summary
line gives cycles/s against the 1 M cycles/s target and codes/cycle against lanes.
"""
from __future__ import annotations

import argparse
import logging
import time

from host.backends import make_backend
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered
from host.index.index_dir import export_index, load_index
from host.spec.scan_params import ScanParams


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--nlist", type=int, default=64, help="few lists -> long lists (default 64: ~3k codes each)")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--lanes", type=int, default=4)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nq", type=int, default=50)
    ap.add_argument("--nprobe", type=int, default=4)
    ap.add_argument("--clock-mhz", type=float, default=150.0)
    ap.add_argument("--workdir", default="build/bench_verilator")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    x = synthetic_clustered(args.n + args.nq, 64, seed=0, clusters=args.nlist)
    idx = load_index(export_index(build_ivfpq(x[: args.n], BuildConfig(nlist=args.nlist, m=args.m)), args.workdir, 1))
    queries = x[args.n:]
    lists = idx.coarse_search(queries, args.nprobe)
    p = ScanParams(m=args.m, lanes=args.lanes, k=args.k)
    rtl = make_backend("verilator", idx, idx.shards[0], p, clock_mhz=args.clock_mhz)
    cpu = make_backend("cpu", idx, idx.shards[0], p, threads=1)
    rtl.search(queries[:1], lists[:1])
    cpu.search(queries[:1], lists[:1])
    rtl.stats.update(queries=0, codes=0, cycles=0, sim_seconds=0.0)
    t0 = time.perf_counter()
    got = rtl.search(queries, lists)
    wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    want = cpu.search(queries, lists)
    cpu_s = time.perf_counter() - t0
    assert (got.ids == want.ids).all() and (got.dist == want.dist).all(), "RTL and cpu results differ"
    s = rtl.stats
    cps = s["cycles"] / s["sim_seconds"]
    cpc = s["codes"] / s["cycles"]
    print(f"{s['codes']:,} codes in {s['cycles']:,} cycles ({cpc:.3f} codes/cycle of {args.lanes} lanes), "
          f"simulated in {s['sim_seconds']:.2f} s ({wall:.2f} s with table building); cpu backend {cpu_s * 1e3:.1f} ms")
    print(f"projected FPGA scan at {args.clock_mhz:.0f} MHz: {rtl.fpga_seconds * 1e3:.3f} ms "
          f"({s['codes'] / rtl.fpga_seconds / 1e6:.0f} M codes/s)")
    print(f"bench_verilator: {cps / 1e6:.2f} M cycles/s = {cps / 1e6:.2f}x the 1 M cycles/s target; "
          f"{cpc / args.lanes:.3f}x lanes codes/cycle; results identical to the cpu backend")
    rtl.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
