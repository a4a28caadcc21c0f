"""Predicted vs measured retrieval through real memory nodes and the coordinator over TCP on localhost.

The calibration (``host.rago.calibrate``) measures the CPU backend in-process and an RPC round trip; this
module runs the deployed path — ``Coordinator.search_batch`` fanning out to ``nodes`` ``MemoryNode``s
(cpu backend, one thread each) — and predicts each search as::

    predicted = scan model(nq, nprobe, codes / nodes) + rpc_latency + coordinator_us

(nodes scan their slices in parallel; ``coordinator_us``, the coarse search, framing and merge, is fitted
as the median excess on the calibration grid), giving ``remote_scan`` measurements for
``host.rago.validate``.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from host.index.datasets import synthetic_clustered
from host.index.index_dir import load_index
from host.rago.scan_model import predict_scan
from host.serve.coordinator import Coordinator
from host.serve.memory_node import MemoryNode, MemoryNodeConfig

REMOTE_GRID = ((16, 8), (64, 4), (8, 32))


def measure_remote(index_path: str | Path, grid=REMOTE_GRID, reps: int = 15, seed: int = 1) -> list[dict]:
    """Best-of-``reps`` seconds of ``Coordinator.search_batch`` through one memory node per shard of the
    index directory ``index_path``; one dict per (nq, nprobe): {what, nodes, nq, nprobe, codes, seconds}."""

    meta = load_index(index_path, shards=[])
    nshards = int(meta.manifest["nshards"])
    sizes = sum(load_index(index_path, shards=[s]).shards[0].list_sizes() for s in range(nshards))
    queries = synthetic_clustered(max(nq for nq, _ in grid), meta.d, seed=seed, clusters=200)

    async def run() -> list[dict]:
        nodes = [MemoryNode.open(index_path, s, config=MemoryNodeConfig(backend="cpu", threads=1))
                 for s in range(nshards)]
        addrs = [f"{h}:{p}" for h, p in [await n.start() for n in nodes]]
        coord = Coordinator(meta, addrs)
        out = []
        try:
            await coord.connect()
            await coord.search_batch(queries[:2], 2, 10)                   # warm up every node
            for nq, nprobe in grid:
                q = queries[:nq]
                codes = int(sizes[meta.coarse_search(q, nprobe)].sum())
                best = float("inf")
                for _ in range(reps):
                    t0 = time.perf_counter()
                    await coord.search_batch(q, nprobe, 10)
                    best = min(best, time.perf_counter() - t0)
                out.append({"what": "remote_scan", "nodes": nshards, "nq": nq, "nprobe": nprobe, "codes": codes,
                            "seconds": best})
        finally:
            await coord.close()
            for n in nodes:
                await n.close()
        return out

    return asyncio.run(run())


def predict_remote(cal: dict, m: dict) -> float:
    """Seconds the calibrated model predicts for a ``remote_scan`` measurement ``m``."""
    scan = predict_scan(cal["cpu_scan"], m["nq"], m["nprobe"], int(np.ceil(m["codes"] / m["nodes"])))
    return scan + (cal["rpc"]["latency_us"] + cal["rpc"].get("coordinator_us", 0.0)) * 1e-6


def fit_coordinator(cal: dict, points: list[dict]) -> dict:
    """``coordinator_us``: the median time of remote searches beyond the scan model and one RPC round trip."""
    base = {**cal, "rpc": {**cal["rpc"], "coordinator_us": 0.0}}
    excess = [m["seconds"] - predict_remote(base, m) for m in points]
    return {"coordinator_us": max(0.0, float(np.median(excess)) * 1e6), "remote_points": points}
