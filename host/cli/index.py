"""`anole index build`: vectors (a .fvecs/.bvecs file or synthetic) -> IVF-PQ index directory."""
from __future__ import annotations

import logging

from host.cli.common import group
from host.cluster.build import build_ivfpq_ray
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import read_vecs, synthetic_clustered
from host.index.index_dir import export_index

log = logging.getLogger(__name__)


def register(sub, groups):
    g = group(sub, groups, "index", "build and export IVF-PQ index directories")
    p = g.add_parser("build", help="build a faiss IndexIVFPQ and export it as an index directory",
                     description="Build a faiss IndexIVFPQ (L2, residual, 8-bit codes) and export it with the "
                                 "kernel memory image split over --shards shards (docs/index-format.md).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="base vectors: .fvecs or .bvecs file")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic clustered vectors instead of --data")
    p.add_argument("--dim", type=int, default=128, help="dimension of synthetic vectors (default 128)")
    p.add_argument("--clusters", type=int, default=1000, help="mixture components of synthetic data (default 1000)")
    p.add_argument("--nlist", type=int, default=1024, help="IVF lists (default 1024)")
    p.add_argument("--m", type=int, default=16, help="PQ sub-quantizers, bytes per code (default 16)")
    p.add_argument("--shards", type=int, default=1, help="memory-node shards to split every list over (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=100_000, help="training sample cap, 0 = all (default 100000)")
    p.add_argument("--threads", type=int, default=0, help="faiss threads (default: all)")
    p.add_argument("--out", required=True, help="output index directory")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="train and encode on a Ray cluster (auto, HOST:PORT or ray://HOST:PORT); the same bytes "
                        "as a local build (docs/cluster.md)")
    p.set_defaults(func=build)


def build(args) -> int:
    if args.data:
        x = read_vecs(args.data)
        source = {"file": str(args.data)}
    else:
        x = synthetic_clustered(args.synthetic, args.dim, seed=args.seed, clusters=args.clusters)
        source = {"synthetic": {"n": args.synthetic, "dim": args.dim, "seed": args.seed, "clusters": args.clusters}}
    cfg = BuildConfig(nlist=args.nlist, m=args.m, seed=args.seed, train_size=args.train_size, threads=args.threads)
    if args.ray:
        index = build_ivfpq_ray(args.data or x, cfg, args.ray)
    else:
        index = build_ivfpq(x, cfg)
    out = export_index(index, args.out, args.shards, source=source)
    print(f"index: {index.ntotal} vectors, d={index.d}, nlist={cfg.nlist}, m={cfg.m}, shards={args.shards} -> {out}")
    return 0
