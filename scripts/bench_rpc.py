"""Benchmark the memory-node transport: in-process LocalSearcher vs the same search through 1 memory node
(a real `anole serve memory-node` process) over loopback TCP, same backend and thread count (design.md §7:
<= 10 % overhead for batches of 64 queries).  Batches alternate between the two paths; medians and minima
(the robust estimate on a shared, noisy machine) are compared.
Both paths must return identical ids and integer distances, or the benchmark stops.

    bench_rpc: cpu, 1,000,000 x d64, nlist 1024, nprobe 32, batch 64: in-process 19.10 ms, 1 node over TCP
    20.46 ms (coarse 0.66, scan 18.47, network 1.08, merge 0.18) -> overhead +7.1% median, +5.0% best of 64
    (target <= 10%)
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host.coordinator import Coordinator  # noqa: E402
from host.datasets import synthetic_clustered  # noqa: E402
from host.index_builder import BuildConfig, build_ivfpq  # noqa: E402
from host.index_dir import export_index, load_index  # noqa: E402
from host.local_search import LocalSearcher  # noqa: E402
from host.scan_params import ScanParams  # noqa: E402

log = logging.getLogger("bench_rpc")


def get_index(workdir: Path, n: int, d: int, nlist: int, m: int) -> Path:
    out = workdir / f"n{n}_d{d}_nlist{nlist}_m{m}"
    if not (out / "manifest.json").is_file():
        x = synthetic_clustered(n, d, seed=0, clusters=nlist)
        export_index(build_ivfpq(x, BuildConfig(nlist=nlist, m=m, seed=0)), out, nshards=1)
    return out


def start_node(path: Path, backend: str, threads: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "host.cli", "serve", "memory-node", "--index", str(path), "--shard", "0",
           "--port", "0", "--backend", backend, "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"memory node did not start: {line!r}")
    return proc, line.split()[-1]


async def run(args, index, queries: np.ndarray, addr: str) -> dict:
    params = ScanParams(m=index.m, k=args.k)
    opts = {"threads": args.threads} if args.backend == "cpu" and args.threads else {}
    local = LocalSearcher(index, params, backend=args.backend, **opts)
    coord = Coordinator(load_index(index.path, shards=[]), [addr], params)
    await coord.connect()
    batches = [queries[i * args.batch: (i + 1) * args.batch] for i in range(len(queries) // args.batch)]
    t_local, t_rpc, stages = [], [], []
    for rep in range(args.warmup + args.reps):
        for q in batches:
            t0 = time.perf_counter()
            want = local.search(q, args.nprobe)
            t1 = time.perf_counter()
            got = await coord.search_batch(q, args.nprobe, args.k)
            t2 = time.perf_counter()
            if not np.array_equal(got.ids, want.ids) or not np.array_equal(got.dist, want.dist):
                raise SystemExit("results through the memory node differ from the in-process search")
            if rep >= args.warmup:
                t_local.append(t1 - t0)
                t_rpc.append(t2 - t1)
                stages.append(got.timings)
    await coord.close()
    local.close()
    med = {s: statistics.median(t[s] for t in stages) for s in ("coarse", "scan", "network", "merge")}
    return {"local": statistics.median(t_local), "rpc": statistics.median(t_rpc), **med,
            "local_min": min(t_local), "rpc_min": min(t_rpc)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=8, help="distinct query batches")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="scan and faiss threads on both sides (default 1: stable on a shared machine; 0: all cores)")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_rpc"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import faiss
        faiss.omp_set_num_threads(args.threads)  # the coarse search, identical on both paths
    path = get_index(Path(args.workdir), args.n, args.d, args.nlist, args.m)
    index = load_index(path)
    queries = synthetic_clustered(args.batch * args.batches, args.d, seed=0, clusters=args.nlist, stream=1)
    proc, addr = start_node(path, args.backend, args.threads)
    try:
        r = asyncio.run(run(args, index, queries, addr))
    finally:
        proc.kill()
        proc.wait()
    ms = {k: v * 1e3 for k, v in r.items()}
    print(f"bench_rpc: {args.backend}, {args.n:,} x d{args.d}, nlist {args.nlist}, nprobe {args.nprobe}, "
          f"batch {args.batch}: in-process {ms['local']:.2f} ms, 1 node over TCP {ms['rpc']:.2f} ms (coarse "
          f"{ms['coarse']:.2f}, scan {ms['scan']:.2f}, network {ms['network']:.2f}, merge {ms['merge']:.2f}) -> "
          f"overhead {100 * (r['rpc'] / r['local'] - 1):+.1f}% median, {100 * (r['rpc_min'] / r['local_min'] - 1):+.1f}% "
          f"best of {len(range(args.reps)) * args.batches} (target <= 10%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
