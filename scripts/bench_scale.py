"""Scale benchmark: build synthetic indexes of 1M / 10M / 100M vectors out of core and serve them through 2
memory nodes; faiss IndexIVFPQ on the same index (same lists, same codes, same threads) is the same-run
baseline.

Per size: build time, peak RSS of the build process, on-disk size, memory-node start time (load + map),
and per nprobe the QPS and recall@10 (vs exact neighbours, computed block by block) of anole through 2
memory nodes and of faiss. Prints a markdown table and one summary line with the QPS ratio to faiss.

    python scripts/bench_scale.py --sizes 1000000,10000000 --workdir /tmp/scale
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host.index.datasets import recall_at_k, synthetic_clustered  # noqa: E402
from host.index.index_dir import load_index  # noqa: E402
from host.index.sources import SyntheticSource  # noqa: E402
from host.serve.coordinator import Coordinator  # noqa: E402
from host.spec.scan_params import ScanParams  # noqa: E402

log = logging.getLogger("bench_scale")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def default_nlist(n: int) -> int:
    """1024 up to 10M (a bounded build time on a shared 2-core machine), 16384 from 100M."""
    return 1024 if n <= 20_000_000 else 16384


def build(args, n: int, out: Path) -> dict:
    """Run `anole index build` in a child process; its wall time and peak RSS (wait4)."""
    if (out / "manifest.json").is_file():
        return {"build_s": float("nan"), "rss_gib": float("nan"), "reused": True}
    cmd = [sys.executable, "-m", "host.cli", "index", "build", "--synthetic", str(n), "--dim", str(args.dim),
           "--clusters", str(args.clusters), "--nlist", str(args.nlist or default_nlist(n)), "--m", str(args.m), "--shards", "2",
           "--chunk-size", str(args.chunk_size), "--train-size", str(args.train_size), "--threads",
           str(args.threads), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"build of {n:,} failed (status {status})")
    return {"build_s": time.perf_counter() - t0, "rss_gib": usage.ru_maxrss / 2**20, "reused": False}


def start_node(path: Path, shard: int, threads: int) -> tuple[subprocess.Popen, str, float]:
    cmd = [sys.executable, "-m", "host.cli", "serve", "memory-node", "--index", str(path), "--shard", str(shard),
           "--port", "0", "--threads", str(threads)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"memory node did not start: {line!r}")
    return proc, line.split()[-1], time.perf_counter() - t0


def truth(args, n: int, queries: np.ndarray) -> np.ndarray:
    from faiss.contrib.exhaustive_search import knn_ground_truth

    src = SyntheticSource(n, args.dim, clusters=args.clusters)
    blocks = (src[lo: lo + args.chunk_size] for lo in range(0, n, args.chunk_size))
    return knn_ground_truth(queries, blocks, args.k)[1]


async def serve(index, addrs: list[str], queries: np.ndarray, nprobe: int, k: int) -> tuple[np.ndarray, float]:
    coord = Coordinator(index, addrs, ScanParams(m=index.m, k=k))
    await coord.connect()
    try:
        await coord.search(queries[:16], nprobe)                     # warm-up
        t0 = time.perf_counter()
        res = await coord.search(queries, nprobe)
        return res.ids, len(queries) / (time.perf_counter() - t0)
    finally:
        await coord.close()


def faiss_run(index, queries: np.ndarray, nprobe: int, k: int) -> tuple[np.ndarray, float]:
    import faiss

    faiss.extract_index_ivf(index).nprobe = nprobe
    index.search(queries[:16], k)
    t0 = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, len(queries) / (time.perf_counter() - t0)


def measure(args, n: int) -> list[dict]:
    import faiss

    out = Path(args.workdir) / f"n{n}_d{args.dim}_m{args.m}"
    b = build(args, n, out)
    disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**30
    queries = synthetic_clustered(args.queries, args.dim, clusters=args.clusters, stream=1)
    gt = truth(args, n, queries)
    nodes = [start_node(out, s, args.threads) for s in (0, 1)]
    rows = []
    try:
        index = load_index(out, shards=[])
        for nprobe in args.nprobe:
            ids, qps = asyncio.run(serve(index, [a for _, a, _ in nodes], queries, nprobe, args.k))
            rows.append({"n": n, "system": "anole, 2 memory nodes", "nprobe": nprobe, "qps": qps,
                         "recall": recall_at_k(ids, gt, args.k), **b, "disk_gib": disk,
                         "start_s": max(t for _, _, t in nodes)})
    finally:
        for proc, _, _ in nodes:
            proc.kill()
            proc.wait()
    if args.faiss:
        faiss.omp_set_num_threads(args.threads * 2)          # as many threads as the two nodes together
        fidx = load_index(out, verify=False).faiss_index()
        for nprobe in args.nprobe:
            ids, qps = faiss_run(fidx, queries, nprobe, args.k)
            rows.append({"n": n, "system": "faiss IndexIVFPQ", "nprobe": nprobe, "qps": qps,
                         "recall": recall_at_k(ids, gt, args.k)})
        del fidx
    if args.clean:
        shutil.rmtree(out)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| vectors | system | nprobe | QPS | recall@10 | build s | peak RSS GiB | disk GiB | node start s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = (f"{r['build_s']:.0f} | {r['rss_gib']:.2f} | {r['disk_gib']:.2f} | {r['start_s']:.1f}"
                 if "build_s" in r else "- | - | - | -")
        lines.append(f"| {r['n']:,} | {r['system']} | {r['nprobe']} | {r['qps']:,.0f} | {r['recall']:.3f} | {extra} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,10000000", help="comma-separated vector counts")
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--nlist", type=int, default=0, help="IVF lists (default: 1024 up to 10M, 16384 beyond)")
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=lambda s: [int(v) for v in s.split(",")], default=[16, 32])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--chunk-size", type=int, default=1 << 18)
    ap.add_argument("--train-size", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1, help="threads per memory node; faiss gets twice this")
    ap.add_argument("--no-faiss", dest="faiss", action="store_false", help="skip the faiss baseline")
    ap.add_argument("--clean", action="store_true", help="delete each index after measuring it")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_scale"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += measure(args, n)
        print(table([r for r in rows if r["n"] == n]), flush=True)
    print(table(rows))
    for n in sorted({r["n"] for r in rows}):
        ours = [r for r in rows if r["n"] == n and "build_s" in r]
        base = {r["nprobe"]: r for r in rows if r["n"] == n and "build_s" not in r}
        ratios = ", ".join(f"nprobe {r['nprobe']}: {r['qps'] / base[r['nprobe']]['qps']:.2f} x faiss QPS "
                           f"(recall {r['recall']:.3f} vs {base[r['nprobe']]['recall']:.3f})"
                           for r in ours if r["nprobe"] in base)
        print(f"bench_scale: {n:,} x d{args.dim} PQ{args.m}: build {ours[0]['build_s']:.0f} s, peak RSS "
              f"{ours[0]['rss_gib']:.2f} GiB, {ours[0]['disk_gib']:.2f} GiB on disk; {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
