"""`anole search`: IVF-PQ search with a local backend or through memory nodes; results to .npz."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from host.backends.local_search import LocalSearcher
from host.index.datasets import ground_truth, recall_at_k, synthetic_clustered
from host.index.index_dir import load_index
from host.net.client import RpcClient
from host.net.frames import parse_address
from host.index.sources import open_vectors
from host.serve.coordinator import remote_search
from host.serve.coordinator_server import client_search
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams


def register(sub, groups):
    p = sub.add_parser("search", help="search an index locally (--backend), through memory nodes or a coordinator",
                       description="Search an index directory; writes ids int64[nq,k] and de-quantized distances "
                                   "float32[nq,k] to --out, prints QPS and recall (with --gt or synthetic data).")
    p.add_argument("--index", required=True, help="index directory")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--queries", help="query vectors: .npy, .fvecs, .bvecs or ann-benchmarks .hdf5 (its 'test')")
    q.add_argument("--synthetic-queries", type=int, metavar="N",
                   help="N queries from the distribution of the index's synthetic data")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--lut-bits", type=int, default=16, help="table entry width, 8..16 (default 16)")
    p.add_argument("--backend", default="cpu", help="reference | cpu | verilator | pynq | xrt (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="cpu backend threads (default: all cores)")
    remote = p.add_mutually_exclusive_group()
    remote.add_argument("--memory-nodes", help="H:P,H:P,...: search through running memory nodes instead")
    remote.add_argument("--coordinator", metavar="H:P", help="search through a running `anole serve coordinator`")
    p.add_argument("--gt", help="ground-truth ids for recall: .ivecs, .npy or ann-benchmarks .hdf5 (its 'neighbors')")
    p.add_argument("--out", help="write ids and distances to this .npz")
    p.set_defaults(func=search)


def search(args) -> int:
    index = load_index(args.index, shards=[] if args.memory_nodes or args.coordinator else None)
    if not 1 <= args.k <= 100:
        raise InputError(f"--k must be in 1..100 (the kernel's range), not {args.k}")
    params = ScanParams(m=index.m, k=args.k, lut_bits=args.lut_bits)
    synth = index.manifest.get("source", {}).get("synthetic")
    if args.queries:
        queries = np.asarray(open_vectors(args.queries, "queries"), dtype=np.float32)
    elif synth:
        queries = synthetic_clustered(args.synthetic_queries, synth["dim"], seed=synth["seed"],
                                      clusters=synth["clusters"], stream=1)
    else:
        raise InputError(f"{args.index} was not built from synthetic data; give --queries")
    truth = np.asarray(open_vectors(args.gt, "gt")) if args.gt else None
    if truth is not None and len(truth) != len(queries):
        raise InputError(f"{args.gt}: ground truth for {len(truth)} queries, but {len(queries)} queries were given")
    t0 = time.perf_counter()
    if args.memory_nodes:
        res = remote_search(args.memory_nodes, index, queries, args.nprobe, params)
    elif args.coordinator:
        res = asyncio.run(_coordinator_search(args.coordinator, queries, args.nprobe, args.k))
    else:
        opts = {"threads": args.threads} if args.backend in ("cpu", "verilator") else {}
        searcher = LocalSearcher(index, params, backend=args.backend, **opts)
        searcher.search(queries[:1], args.nprobe)            # warm-up (JIT, caches)
        t0 = time.perf_counter()
        res = searcher.search(queries, args.nprobe)
    elapsed = time.perf_counter() - t0
    print(f"search: {len(queries)} queries, k={args.k}, nprobe={args.nprobe}, lut_bits={args.lut_bits}: "
          f"{len(queries) / elapsed:,.0f} QPS ({elapsed * 1e3:.1f} ms)")
    if truth is None and synth and not args.queries:
        base = synthetic_clustered(synth["n"], synth["dim"], seed=synth["seed"], clusters=synth["clusters"])
        truth = ground_truth(base, queries, args.k, index.manifest["source"].get("metric", "l2"))
    if truth is not None:
        print(f"recall@{args.k} vs exact: {recall_at_k(res.ids, np.asarray(truth), args.k):.4f}")
    if args.out:
        np.savez(args.out, ids=res.ids, distances=res.distances)
        print(f"wrote {args.out}")
    return 0


async def _coordinator_search(address: str, queries: np.ndarray, nprobe: int, k: int):
    client = await RpcClient.connect(*parse_address(address), timeout=60.0)
    try:
        return await client_search(client, queries, nprobe, k)
    finally:
        await client.close()
