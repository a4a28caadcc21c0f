"""`anole demo`: the end-to-end demo that `make demo` runs."""
from __future__ import annotations


def register(sub, groups):
    p = sub.add_parser("demo", help="the end-to-end demo (what `make demo` runs)",
                       description="Embed the Python standard library's docstrings with MiniLM, build an IVF-PQ "
                                   "index over shards, answer natural-language questions, report recall and QPS.")
    p.add_argument("--workdir", default="build/demo", help="cache for embeddings and the index (default build/demo)")
    p.add_argument("--max-chunks", type=int, default=0, help="limit the corpus (default: all chunks)")
    p.add_argument("--backend", default="cpu", help="scan backend (default cpu)")
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--lut-bits", type=int, default=16)
    p.set_defaults(func=demo)


def demo(args) -> int:
    from host.demo import DemoConfig, run

    run(DemoConfig(workdir=args.workdir, max_chunks=args.max_chunks, backend=args.backend, shards=args.shards,
                   nprobe=args.nprobe, lut_bits=args.lut_bits))
    return 0
