"""Benchmark memory nodes over TCP: in-process LocalSearcher vs the same search through 1 memory node and
through 2 memory nodes (real `anole serve memory-node` processes, one shard each) on loopback, same index,
backend and thread count (design.md §7: <= 10 % overhead for batches of 64 queries).  Batches alternate
between the paths; medians and minima (the robust estimate on a shared, noisy machine) are compared.
Every path must return identical ids and integer distances, or the benchmark stops. --plot writes the
latency per stage (coarse, scan, network, merge) of each path.

    bench_memory_nodes: cpu, 1,000,000 x d64, nlist 1024, nprobe 32, batch 64: in-process 19.10 ms,
    1 node 20.46 ms (+7.1%), 2 nodes 12.3 ms (...) (target <= 10%)
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

from host.backends.local_search import LocalSearcher  # noqa: E402
from host.index.builder import BuildConfig, build_ivfpq  # noqa: E402
from host.index.datasets import synthetic_clustered  # noqa: E402
from host.index.index_dir import export_index, load_index  # noqa: E402
from host.serve.coordinator import Coordinator  # noqa: E402
from host.spec.scan_params import ScanParams  # noqa: E402

log = logging.getLogger("bench_memory_nodes")


def get_index(workdir: Path, n: int, d: int, nlist: int, m: int) -> tuple[Path, Path]:
    """The same trained index exported as 1 shard and as 2 shards."""
    base = workdir / f"n{n}_d{d}_nlist{nlist}_m{m}"
    one, two = base / "shards1", base / "shards2"
    if not (one / "manifest.json").is_file() or not (two / "manifest.json").is_file():
        x = synthetic_clustered(n, d, seed=0, clusters=nlist)
        index = build_ivfpq(x, BuildConfig(nlist=nlist, m=m, seed=0))
        export_index(index, one, nshards=1)
        export_index(index, two, nshards=2)
    return one, two


def start_node(path: Path, backend: str, threads: int, shard: int = 0) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "host.cli", "serve", "memory-node", "--index", str(path), "--shard", str(shard),
           "--port", "0", "--backend", backend, "--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"memory node did not start: {line!r}")
    return proc, line.split()[-1]


STAGES = ("coarse", "scan", "network", "merge")


async def run(args, index, queries: np.ndarray, paths: dict[str, tuple[Path, list[str]]]) -> dict:
    """Median and minimum batch latency (s) and median stage times per path: 'in-process' and each of paths."""
    params = ScanParams(m=index.m, k=args.k)
    opts = {"threads": args.threads} if args.backend == "cpu" and args.threads else {}
    local = LocalSearcher(index, params, backend=args.backend, **opts)
    coords = {}
    for name, (path, addrs) in paths.items():
        coords[name] = Coordinator(load_index(path, shards=[]), addrs, params)
        await coords[name].connect()
    batches = [queries[i * args.batch: (i + 1) * args.batch] for i in range(len(queries) // args.batch)]
    times = {name: [] for name in ["in-process", *paths]}
    stages = {name: [] for name in times}
    for rep in range(args.warmup + args.reps):
        for q in batches:
            t0 = time.perf_counter()
            want = local.search(q, args.nprobe)
            if rep >= args.warmup:
                times["in-process"].append(time.perf_counter() - t0)
                stages["in-process"].append({**want.timings, "network": 0.0})
            for name, coord in coords.items():
                t0 = time.perf_counter()
                got = await coord.search_batch(q, args.nprobe, args.k)
                elapsed = time.perf_counter() - t0
                if not np.array_equal(got.ids, want.ids) or not np.array_equal(got.dist, want.dist):
                    raise SystemExit(f"results through {name} differ from the in-process search")
                if rep >= args.warmup:
                    times[name].append(elapsed)
                    stages[name].append(got.timings)
    for coord in coords.values():
        await coord.close()
    local.close()
    return {name: {"median": statistics.median(t), "min": min(t),
                   **{s: statistics.median(x.get(s, 0.0) for x in stages[name]) for s in STAGES}}
            for name, t in times.items()}


def plot(results: dict, out: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(results)
    bottom = np.zeros(len(names))
    for s in STAGES:
        vals = np.array([results[n][s] * 1e3 for n in names])
        ax.bar(names, vals, bottom=bottom, label=s)
        bottom += vals
    ax.plot(names, [results[n]["median"] * 1e3 for n in names], "k_", markersize=30, label="end to end (median)")
    ax.set_ylabel("ms per batch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


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
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_memory_nodes"))
    ap.add_argument("--plot", help="write the per-stage latency plot here (PNG)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        import faiss
        faiss.omp_set_num_threads(args.threads)  # the coarse search, identical on both paths
    one, two = get_index(Path(args.workdir), args.n, args.d, args.nlist, args.m)
    index = load_index(one)
    queries = synthetic_clustered(args.batch * args.batches, args.d, seed=0, clusters=args.nlist, stream=1)
    procs = []
    try:
        node1 = start_node(one, args.backend, args.threads)
        nodes2 = [start_node(two, args.backend, args.threads, shard) for shard in (0, 1)]
        procs = [node1[0]] + [p for p, _ in nodes2]
        r = asyncio.run(run(args, index, queries, {"1 node": (one, [node1[1]]),
                                                   "2 nodes": (two, [a for _, a in nodes2])}))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    base = r["in-process"]
    parts = ", ".join(f"{name} {v['median'] * 1e3:.2f} ms ({100 * (v['median'] / base['median'] - 1):+.1f}% median, "
                      f"{100 * (v['min'] / base['min'] - 1):+.1f}% best; network {v['network'] * 1e3:.2f} ms)"
                      for name, v in r.items() if name != "in-process")
    print(f"bench_memory_nodes: {args.backend}, {args.n:,} x d{args.d}, nlist {args.nlist}, nprobe {args.nprobe}, "
          f"batch {args.batch}, threads {args.threads}: in-process {base['median'] * 1e3:.2f} ms; {parts} "
          f"(target: 1 node <= +10%)")
    if args.plot:
        plot(r, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
