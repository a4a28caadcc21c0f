"""Recall of the integer reference model per lut_bits, against faiss IndexIVFPQ ids and exact search.

Prints one line per lut_bits and a summary line with the recall ratio to faiss at 16 bits;
--plot writes recall against lut_bits.
"""
from __future__ import annotations

import argparse
import logging

from tqdm import tqdm

from host.backends.local_search import LocalSearcher
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import ground_truth, recall_at_k, synthetic_clustered
from host.index.index_dir import export_index, load_index
from host.spec.scan_params import ScanParams


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--nlist", type=int, default=256)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--nq", type=int, default=500)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--backend", default="reference")
    ap.add_argument("--workdir", default="build/bench_recall")
    ap.add_argument("--plot", help="write a PNG of recall against lut_bits")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)

    x = synthetic_clustered(args.n + args.nq, args.dim, seed=0)
    base, queries = x[: args.n], x[args.n:]
    index = build_ivfpq(base, BuildConfig(nlist=args.nlist, m=args.m))
    idx = load_index(export_index(index, args.workdir, 1))
    index.nprobe = args.nprobe
    _, faiss_ids = index.search(queries, args.k)
    exact = ground_truth(base, queries, args.k)
    faiss_exact = recall_at_k(faiss_ids, exact, args.k)
    rows = []
    for bits in tqdm(range(8, 17), desc="lut_bits"):
        res = LocalSearcher(idx, ScanParams(m=args.m, k=args.k, lut_bits=bits), backend=args.backend).search(
            queries, args.nprobe)
        rows.append((bits, recall_at_k(res.ids, faiss_ids, args.k), recall_at_k(res.ids, exact, args.k)))
    print(f"n={args.n} d={args.dim} IVF{args.nlist},PQ{args.m} nprobe={args.nprobe} nq={args.nq} k={args.k}; "
          f"faiss recall@{args.k} vs exact {faiss_exact:.4f}")
    for bits, rf, re in rows:
        print(f"lut_bits={bits:2d}: recall@{args.k} of faiss ids {rf:.4f}, vs exact {re:.4f}")
    print(f"bench_recall: reference@16 bits finds {rows[-1][1]:.4f} of faiss's ids; "
          f"recall vs exact {rows[-1][2] / faiss_exact:.3f}x faiss's")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-", label="of faiss IVFPQ ids")
        ax.plot([r[0] for r in rows], [r[2] for r in rows], "s-", label="vs exact search")
        ax.axhline(faiss_exact, ls="--", c="gray", label="faiss vs exact")
        ax.set_xlabel("lut_bits")
        ax.set_ylabel(f"recall@{args.k}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
