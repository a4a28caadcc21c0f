"""Recall@10 against QPS over nprobe: anole's cpu backend vs faiss IndexIVFPQ on the same index (same lists,
codes and threads), with the ground truth of an ann-benchmarks .hdf5 file or computed exactly.

    python scripts/bench_recall_qps.py --index DIR --data ann.hdf5      # queries 'test', truth 'neighbors'
    python scripts/bench_recall_qps.py --synthetic 200000 --metric cos  # builds a synthetic index first

Prints one row per nprobe and a summary line: anole's QPS / faiss's QPS at the smallest nprobe where anole
reaches --target recall; --plot writes recall against QPS for both.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host.backends.local_search import LocalSearcher  # noqa: E402
from host.index.builder import BuildConfig  # noqa: E402
from host.index.datasets import ground_truth, recall_at_k, synthetic_clustered  # noqa: E402
from host.index.index_dir import load_index  # noqa: E402
from host.index.sources import SyntheticSource, open_vectors  # noqa: E402
from host.index.stream_build import build_index  # noqa: E402
from host.spec.scan_params import ScanParams  # noqa: E402


def timed(fn, reps: int) -> tuple[object, float]:
    """fn()'s result and its best wall time over reps runs (after one warm-up)."""
    fn()
    best, out = float("inf"), None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def workload(args):
    """(index directory, queries, ground truth) from --index/--data or a synthetic build."""
    if args.synthetic:
        out = Path(args.workdir) / f"syn{args.synthetic}_d{args.dim}_{args.metric}"
        if not (out / "manifest.json").is_file():
            build_index(SyntheticSource(args.synthetic, args.dim), BuildConfig(nlist=args.nlist, m=args.m,
                        metric=args.metric), out, nshards=1)
        queries = synthetic_clustered(args.nq, args.dim, stream=1)
        truth = ground_truth(SyntheticSource(args.synthetic, args.dim)[0:args.synthetic], queries, args.k, args.metric)
        return load_index(out), queries, truth
    index = load_index(args.index)
    queries = np.asarray(open_vectors(args.data, "queries"), np.float32)[: args.nq]
    truth = np.asarray(open_vectors(args.data, "gt"))[: args.nq]
    return index, queries, truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", help="index directory (with --data for queries and ground truth)")
    ap.add_argument("--data", help="ann-benchmarks .hdf5 with 'test' and 'neighbors'")
    ap.add_argument("--synthetic", type=int, help="build a synthetic index of this many vectors instead")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--metric", default="l2", choices=["l2", "ip", "cos"])
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nprobe", type=lambda s: [int(v) for v in s.split(",")], default=[1, 2, 4, 8, 16, 32, 64, 128])
    ap.add_argument("--threads", type=int, default=1, help="scan threads for both (default 1: stable when shared)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--target", type=float, default=0.9, help="recall at which QPS is compared")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_recall_qps"))
    ap.add_argument("--plot", help="write recall@k against QPS (PNG)")
    args = ap.parse_args()
    if not args.synthetic and not (args.index and args.data):
        ap.error("give --index and --data, or --synthetic N")
    logging.basicConfig(level=logging.WARNING)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    index, queries, truth = workload(args)
    fidx = index.faiss_index()
    ivf = faiss.extract_index_ivf(fidx)
    searcher = LocalSearcher(index, ScanParams(m=index.m, k=args.k), backend="cpu", threads=args.threads)
    rows = []
    for nprobe in [p for p in args.nprobe if p <= index.nlist]:
        ours, t_ours = timed(lambda: searcher.search(queries, nprobe).ids, args.reps)
        ivf.nprobe = nprobe
        theirs, t_faiss = timed(lambda: fidx.search(queries, args.k)[1], args.reps)
        rows.append((nprobe, recall_at_k(ours, truth, args.k), len(queries) / t_ours,
                     recall_at_k(theirs, truth, args.k), len(queries) / t_faiss))
        print(f"nprobe {nprobe:4d}: anole recall@{args.k} {rows[-1][1]:.4f} at {rows[-1][2]:9,.0f} QPS; "
              f"faiss {rows[-1][3]:.4f} at {rows[-1][4]:9,.0f} QPS", flush=True)
    hit = next((r for r in rows if r[1] >= args.target), rows[-1])
    print(f"bench_recall_qps: {index.ntotal:,} x d{index.d_in} {index.metric}, {args.threads} thread(s): at nprobe "
          f"{hit[0]} anole recall@{args.k} {hit[1]:.4f} at {hit[2] / hit[4]:.2f} x faiss QPS (faiss recall {hit[3]:.4f})")
    if args.plot:
        import matplotlib  # lazy: plotting only
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: plotting only
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r[1] for r in rows], [r[2] for r in rows], "o-", label="anole cpu backend")
        ax.plot([r[3] for r in rows], [r[4] for r in rows], "s--", label="faiss IndexIVFPQ")
        for r in rows:
            ax.annotate(str(r[0]), (r[1], r[2]), fontsize=7)
        ax.set_xlabel(f"recall@{args.k}")
        ax.set_ylabel("QPS")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
