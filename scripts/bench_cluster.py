"""Benchmark the deployment through `anole cluster up` against hand-started `anole serve` processes in the same
run: the demo's retrieval workload (the shape of its kNN-LM datastore: 100,000 vectors of d=160, IVF-PQ with
m=32, 2 shards; one query per request, k=100, nprobe 8; 2 memory nodes of the cpu backend behind a
coordinator), synthetic vectors instead of the demo model's hidden states, sent to each coordinator over TCP.
Requests never pass through Ray, so the ratio should be 1 within noise. Rounds alternate between the two
deployments (load drift on a shared machine hits both); every request's ids and distances must agree between
them, or the benchmark stops.

    bench_cluster: 100,000 x d160, nlist 512, 2 shards, k 100, nprobe 8, hand-started servers in one session at
    nice 15: latency p50 hand 1.81 ms, cluster 1.82 ms (x1.00); p99 hand 8.29 ms, cluster 5.82 ms (x0.70); QPS
    with 4 clients hand 1197, cluster 1199 (x1.00)
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

from host.cluster.deploy import down, up  # noqa: E402
from host.cluster.topology import parse_topology  # noqa: E402
from host.index.builder import BuildConfig, build_ivfpq  # noqa: E402
from host.index.datasets import synthetic_clustered  # noqa: E402
from host.index.index_dir import export_index  # noqa: E402
from host.net.client import RpcClient  # noqa: E402
from host.ralm.cluster import LocalCluster  # noqa: E402
from host.ralm.datastore import default_nlist  # noqa: E402
from host.serve.coordinator_server import client_search  # noqa: E402

DEMO_NLIST = min(512, default_nlist(100_000))    # as host/ralm/demo.py sizes the kNN datastore


def get_index(workdir: Path, n: int, d: int, nlist: int, m: int) -> Path:
    out = workdir / f"n{n}_d{d}_nlist{nlist}_m{m}_s2"
    if not (out / "manifest.json").is_file():
        x = synthetic_clustered(n, d, seed=0, clusters=nlist)
        export_index(build_ivfpq(x, BuildConfig(nlist=nlist, m=m, seed=0)), out, nshards=2)
    return out


class SameSession(LocalCluster):
    """LocalCluster's servers in the conditions of Ray's workers: in the driver's session (under CFS autogroup
    scheduling, the Linux default, a session competes for the CPUs as one group) and at Ray's worker niceness."""

    nice = 0

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logfile = self.logdir / f"{name.replace(' ', '-')}.log"
        with open(logfile, "w") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "host.cli", *args], stdout=subprocess.PIPE, stderr=stderr,
                                    text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                    preexec_fn=lambda: os.nice(self.nice))
        self.procs.append((name, proc, logfile))
        return proc


def _niceness() -> int:
    return os.nice(0)


def hand_started(c: LocalCluster, index: Path, k: int) -> str:
    """Two memory nodes and a coordinator as `make demo` starts them: `anole serve` processes."""
    nodes = [c.start(f"memory node {s}", ["serve", "memory-node", "--index", str(index), "--shard", str(s),
                                          "--port", "0", "--k", str(k), "--threads", "1"]) for s in (0, 1)]
    return c.start("coordinator", ["serve", "coordinator", "--index", str(index), "--memory-nodes", ",".join(nodes),
                                   "--port", "0"])


def cluster_up(index: Path, k: int) -> str:
    topo = parse_topology({"index": str(index), "namespace": "bench", "bind": "127.0.0.1",
                           "memory_node": {"backend": "cpu", "k": k, "threads": 1, "resources": {"fpga": 1}},
                           "shards": 2, "coordinators": [{"name": "coordinator"}]})
    return next(r["address"] for r in up(topo) if r["role"] == "coordinator")


async def latency(address: str, queries: np.ndarray, nprobe: int, k: int) -> tuple[list[float], list]:
    host, port = address.rsplit(":", 1)
    client = await RpcClient.connect(host, int(port))
    times, results = [], []
    try:
        for q in queries:
            t0 = time.perf_counter()
            r = await client_search(client, q[None], nprobe, k)
            times.append(time.perf_counter() - t0)
            results.append((r.ids, r.dist))
    finally:
        await client.close()
    return times, results


async def throughput(address: str, queries: np.ndarray, nprobe: int, k: int, clients: int) -> float:
    """Requests per second of ``clients`` concurrent connections splitting ``queries``."""
    t0 = time.perf_counter()
    await asyncio.gather(*(latency(address, queries[i::clients], nprobe, k) for i in range(clients)))
    return len(queries) / (time.perf_counter() - t0)


def measure(args, addrs: dict[str, str], queries: np.ndarray) -> dict:
    out = {name: {"lat": [], "qps": []} for name in addrs}
    for rnd in range(args.warmup + args.rounds):
        ref = None
        for name, addr in sorted(addrs.items(), reverse=bool(rnd % 2)):      # alternate who goes first
            t, res = asyncio.run(latency(addr, queries, args.nprobe, args.k))
            if ref is None:
                ref = res
            elif any(not (np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])) for a, b in zip(ref, res)):
                raise SystemExit("results through the two deployments differ")
            qps = asyncio.run(throughput(addr, queries, args.nprobe, args.k, args.clients))
            if rnd >= args.warmup:
                out[name]["lat"] += t
                out[name]["qps"].append(qps)
    return {name: {"p50": statistics.median(v["lat"]), "p99": float(np.percentile(v["lat"], 99)),
                   "qps": statistics.median(v["qps"])} for name, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=160, help="the demo model's hidden size (default 160)")
    ap.add_argument("--nlist", type=int, default=DEMO_NLIST)
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--nprobe", type=int, default=8)
    ap.add_argument("--requests", type=int, default=200, help="requests per round and deployment")
    ap.add_argument("--clients", type=int, default=4, help="concurrent clients of the QPS phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--own-sessions", action="store_true",
                    help="hand-started servers each in a session of their own, as `anole demo` starts them "
                         "(default: in this process's session at the niceness of Ray's workers, like them)")
    ap.add_argument("--workdir", default=str(ROOT / "build" / "bench_cluster"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray
    from ray.cluster_utils import Cluster

    os.environ["OMP_NUM_THREADS"] = "1"          # Ray gives each one-CPU actor one thread; the same by hand
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    index = get_index(Path(args.workdir), args.n, args.d, args.nlist, args.m)
    queries = synthetic_clustered(args.requests, args.d, seed=0, clusters=args.nlist, stream=1)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=4, resources={"fpga": 2},
                                                                include_dashboard=False, object_store_memory=80 << 20))
    try:
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        SameSession.nice = ray.get(ray.remote(_niceness).remote())
        with (LocalCluster if args.own_sessions else SameSession)(Path(args.workdir) / "logs") as hand:
            addrs = {"hand": hand_started(hand, index, args.k), "cluster": cluster_up(index, args.k)}
            try:
                r = measure(args, addrs, queries)
            finally:
                down("bench")
    finally:
        ray.shutdown()
        cluster.shutdown()
    h, c = r["hand"], r["cluster"]
    sessions = "own sessions" if args.own_sessions else f"one session at nice {SameSession.nice}"
    print(f"bench_cluster: {args.n:,} x d{args.d}, nlist {args.nlist}, 2 shards, k {args.k}, nprobe {args.nprobe}, "
          f"hand-started servers in {sessions}: "
          f"latency p50 hand {h['p50'] * 1e3:.2f} ms, cluster {c['p50'] * 1e3:.2f} ms (x{c['p50'] / h['p50']:.2f}); "
          f"p99 hand {h['p99'] * 1e3:.2f} ms, cluster {c['p99'] * 1e3:.2f} ms (x{c['p99'] / h['p99']:.2f}); "
          f"QPS with {args.clients} clients hand {h['qps']:.0f}, cluster {c['qps']:.0f} (x{c['qps'] / h['qps']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
