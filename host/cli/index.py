"""`anole index build` (vectors -> index directory, out of core) and `anole index import` (a faiss index)."""
from __future__ import annotations

import logging

from host.cli.common import group
from host.cluster.build import build_index_ray
from host.index.builder import METRICS, BuildConfig
from host.index.faiss_io import read_faiss
from host.index.index_dir import export_index
from host.index.sources import SyntheticSource, hdf5_metric, open_vectors
from host.index.stream_build import build_index

log = logging.getLogger(__name__)


def register(sub, groups):
    g = group(sub, groups, "index", "build, import and export IVF-PQ index directories")
    p = g.add_parser("build", help="build an IVF-PQ index directory out of core (faiss training, chunked encoding)",
                     description="Train a faiss IVF-PQ (8-bit codes, residual) on a sample, encode the vectors chunk "
                                 "by chunk into --shards shards (docs/index-format.md). Peak memory is bounded by "
                                 "--chunk-size; an interrupted build resumes when run again with the same arguments.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="base vectors: .npy, .fvecs, .bvecs or ann-benchmarks .hdf5 (its 'train')")
    src.add_argument("--synthetic", type=int, metavar="N", help="N synthetic clustered vectors instead of --data")
    p.add_argument("--dim", type=int, default=128, help="dimension of synthetic vectors (default 128)")
    p.add_argument("--clusters", type=int, default=1000, help="mixture components of synthetic data (default 1000)")
    p.add_argument("--nlist", type=int, default=1024, help="IVF lists (default 1024)")
    p.add_argument("--m", type=int, default=16, help="PQ sub-quantizers, bytes per code (default 16)")
    p.add_argument("--factory", help='faiss factory string instead of --nlist/--m, e.g. "OPQ16_64,IVF4096,PQ16"')
    p.add_argument("--metric", choices=sorted(METRICS),
                   help="l2, ip or cos (default: the .hdf5 file's distance attribute, else l2)")
    p.add_argument("--shards", type=int, default=1, help="memory-node shards to split every list over (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=100_000, help="training sample cap, 0 = all (default 100000)")
    p.add_argument("--chunk-size", type=int, default=1 << 18, help="vectors encoded per chunk (default 262144)")
    p.add_argument("--threads", type=int, default=0, help="faiss threads (default: all)")
    p.add_argument("--out", required=True, help="output index directory")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="train and encode on a Ray cluster (auto, HOST:PORT or ray://HOST:PORT); the same bytes "
                        "as a local build (docs/cluster.md)")
    p.set_defaults(func=build)

    p = g.add_parser("import", help="import a faiss IndexIVFPQ (optionally behind OPQ/PCA/normalization)",
                     description="Export an existing faiss index (faiss.write_index) of type IndexIVFPQ, 8-bit codes, "
                                 "L2 or inner product, optionally in an IndexPreTransform, as an index directory; "
                                 "ids are kept.")
    p.add_argument("index", help="the faiss index file")
    p.add_argument("--shards", type=int, default=1, help="memory-node shards (default 1)")
    p.add_argument("--out", required=True, help="output index directory")
    p.set_defaults(func=import_faiss)


def build(args) -> int:
    metric = args.metric
    if args.data:
        src = open_vectors(args.data, "base")
        source = {"file": str(args.data)}
        if metric is None and str(args.data).endswith((".hdf5", ".h5")):
            metric = hdf5_metric(args.data)
    else:
        src = SyntheticSource(args.synthetic, args.dim, seed=args.seed, clusters=args.clusters)
        source = {"synthetic": {"n": args.synthetic, "dim": args.dim, "seed": args.seed, "clusters": args.clusters}}
    cfg = BuildConfig(nlist=args.nlist, m=args.m, seed=args.seed, train_size=args.train_size, threads=args.threads,
                      factory=args.factory, metric=metric or "l2", chunk_size=args.chunk_size)
    source = {**source, "metric": cfg.metric}
    if args.ray:
        out = build_index_ray(args.data or src, cfg, args.out, args.shards, source=source, address=args.ray)
    else:
        out = build_index(src, cfg, args.out, args.shards, source=source)
    print(f"index: {src.shape[0]} vectors, d={src.shape[1]}, {cfg.factory_string()} ({cfg.metric}), "
          f"shards={args.shards} -> {out}")
    return 0


def import_faiss(args) -> int:
    index = read_faiss(args.index)
    out = export_index(index, args.out, args.shards, source={"faiss": str(args.index)})
    print(f"index: imported {index.ntotal} vectors from {args.index}, shards={args.shards} -> {out}")
    return 0
