"""Measure anole's own components and write the calibration file the performance model reads.

Measured here: the CPU scan backend on a synthetic IVF-PQ index (one thread: codes/s/core) fitted as
``scan_s = overhead + per_query * nq + codes / rate``, and the RPC round trip of ``host.net`` on
localhost. Calibration file (JSON)::

    {"version": 1, "host": ..., "date": ...,
     "cpu_scan": {"backend": "cpu", "threads": 1, "m": 16, "d": 64, "ntotal": ..., "nlist": ...,
                  "scan_rate": codes/s/core, "per_query_us": ..., "batch_overhead_us": ...,
                  "points": [{"nq", "nprobe", "codes", "seconds"}, ...]},
     "rpc": {"latency_us": median round trip, "payload_bytes": ..., "calls": ...,
             "coordinator_us": ..., "remote_points": [{"what": "remote_scan", "nodes", "nq", ...}]},
     "fpga_kernel": {"lanes": 4, "codes_per_cycle": 3.9, "efficiency": 0.97, "mode": "throughput",
                     "source": "<summary.json of the cocotb scan bench>"}}          # optional

``fpga_kernel`` comes from the RTL scan bench's summary (sim/scan/test_scan.py, ``ANOLE_BENCH_OUT``),
preferably its throughput mode (lists of 1,000-2,000 codes, no bubbles): measured codes per cycle per lane.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from host.backends.local_search import LocalSearcher
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered
from host.index.index_dir import export_index, load_index
from host.net.client import RpcClient
from host.net.server import RpcServer
from host.rago.coeff import Coefficient, SchemaError, check_keys
from host.rago.localhost import REMOTE_GRID, fit_coordinator, measure_remote
from host.rago.scan_model import fit_scan
from host.rago.schema import RagSchema
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams
from sim.summary import read_scan_summary

log = logging.getLogger(__name__)
GRID = ((8, 4), (32, 4), (8, 16), (32, 16), (64, 8), (128, 1), (2, 32))
"""(nq, nprobe) points the scan is measured at."""


class ScanBench:
    """``LocalSearcher`` with one thread over ``index`` (an IndexDir) or a synthetic index built in ``workdir``."""

    def __init__(self, workdir: str | Path | None = None, index=None, n: int = 20_000, d: int = 32, nlist: int = 32,
                 m: int = 8, seed: int = 0, backend: str = "cpu"):
        if index is None:

            x = synthetic_clustered(n, d, seed=seed, clusters=200)
            cfg = BuildConfig(nlist=nlist, m=m, seed=seed, train_size=10_000, threads=1)
            index = load_index(export_index(build_ivfpq(x, cfg), Path(workdir) / "index", nshards=1))
        self.index = index
        self.queries = synthetic_clustered(256, index.d, seed=seed + 1, clusters=200)
        opts = {"threads": 1} if backend == "cpu" else {}
        self.searcher = LocalSearcher(index, ScanParams(m=index.m, k=10), backend=backend, **opts)
        self.backend = backend
        self.searcher.search(self.queries[:2], 2)                    # compile / warm up
        self.sizes = sum(s.list_sizes() for s in index.shards)

    def measure(self, nq: int, nprobe: int, reps: int = 3) -> dict:
        """Best of ``reps`` scan times for ``nq`` queries at ``nprobe``, with the codes scanned."""
        q = self.queries[:nq]
        codes = int(self.sizes[self.index.coarse_search(q, nprobe)].sum())
        best = min(self.searcher.search(q, nprobe).timings["scan"] for _ in range(reps))
        return {"nq": nq, "nprobe": nprobe, "codes": codes, "seconds": best}

    def close(self) -> None:
        self.searcher.close()


def within_nlist(grid, nlist: int) -> tuple:
    """The (nq, nprobe) grid with nprobe capped at the index's ``nlist``, repeats dropped."""
    return tuple(dict.fromkeys((nq, min(nprobe, nlist)) for nq, nprobe in grid))


def measure_rpc(calls: int = 200, payload_bytes: int = 64 * 4 + 10 * 16) -> dict:
    """Median round trip (µs) of an echo request of ``payload_bytes`` over host.net on localhost."""

    async def run():
        server = RpcServer()

        async def echo(fields):
            return fields
        server.register(16, echo)
        host, port = await server.start("127.0.0.1", 0)
        client = await RpcClient.connect(host, port)
        payload = {"x": np.zeros(payload_bytes, np.uint8)}
        times = []
        try:
            for _ in range(calls):
                t0 = time.perf_counter()
                await client.call(16, payload)
                times.append(time.perf_counter() - t0)
        finally:
            await client.close()
            await server.close()
        return times

    times = asyncio.run(run())
    return {"latency_us": float(np.median(times[calls // 10:]) * 1e6), "payload_bytes": payload_bytes, "calls": calls}


def read_rtl_summary(path: str | Path) -> dict:
    """The ``fpga_kernel`` entry from a cocotb scan-bench summary JSON (codes per cycle of the RTL kernel)."""
    try:
        return read_scan_summary(path)
    except InputError as e:
        raise SchemaError(str(e)) from None


def calibrate(out: str | Path | None = None, grid=GRID, rpc: bool = True, remote: bool = True,
              rtl_summary: str | Path | None = None, **bench_kw) -> dict:
    """Run the measurements and fit them: the CPU scan; with ``rpc`` the RPC round trip; with ``remote``
    also searches through a memory node and the coordinator on localhost, whose median excess over
    scan + RPC becomes ``coordinator_us``; the RTL bench's rate when ``rtl_summary`` is given. Writes the
    calibration JSON when ``out`` is given."""
    with tempfile.TemporaryDirectory(prefix="anole-rago-") as tmp:
        bench = ScanBench(tmp, **bench_kw)
        grid = within_nlist(grid, bench.index.nlist)
        try:
            points = [bench.measure(nq, nprobe) for nq, nprobe in grid]
        finally:
            bench.close()
        idx = bench.index
        scan = {"backend": bench.backend, "threads": 1, "m": idx.m, "d": idx.d, "ntotal": idx.ntotal,
                "nlist": idx.nlist, **fit_scan(points), "points": points}
        cal = {"version": 1, "host": platform.node(), "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpu_scan": scan}
        if rpc or remote:
            cal["rpc"] = measure_rpc()
        if remote:
            cal["rpc"].update(fit_coordinator(cal, measure_remote(idx.path, within_nlist(REMOTE_GRID, idx.nlist))))
    if rtl_summary is not None:
        cal["fpga_kernel"] = read_rtl_summary(rtl_summary)
    log.info("cpu scan %.3g codes/s/core, rpc %s", scan["scan_rate"], cal.get("rpc"))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(cal, indent=1) + "\n")
    return cal


def load_calibration(path: str | Path) -> dict:
    """Read and check a calibration JSON (module docstring); SchemaError naming the field if malformed."""
    try:
        cal = json.loads(Path(path).read_text())
    except OSError as e:
        raise SchemaError(f"cannot read calibration {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"calibration {path} is not valid JSON: {e}") from None
    check_keys("calibration", cal, {"version", "host", "date", "cpu_scan", "rpc", "fpga_kernel", "llm_node"}, {"version"})
    if cal["version"] != 1:
        raise SchemaError(f"calibration.version must be 1, not {cal['version']!r}")
    for key, need in (("cpu_scan", {"scan_rate", "m", "batch_overhead_us"}), ("rpc", {"latency_us"}),
                      ("fpga_kernel", {"efficiency", "source"}), ("llm_node", {"step_us", "step_per_seq_us"})):
        if key in cal:
            missing = need - set(cal[key])
            if missing:
                raise SchemaError(f"calibration.{key} lacks {', '.join(sorted(missing))}")
    return cal


def apply_calibration(schema: RagSchema, cal: dict, path: str = "calibration") -> RagSchema:
    """A copy of ``schema`` whose CPU scan rate (scaled from the measured ``m`` to the schema's
    ``pq_bytes``: table lookups per second are what a core sustains), CPU batch and per-query costs, the LLM
    node's cost per step beyond the forward pass, RPC latency and
    FPGA kernel efficiency (codes/cycle/lane) are the measured ones, each with source ``measured: ...``."""
    res = schema.resources
    src = f"measured: {path}"
    if "cpu_scan" in cal and res.cpu_server is not None:
        c, pq = cal["cpu_scan"], schema.retrieval.pq_bytes
        rate = Coefficient(c["scan_rate"] * c["m"] / pq, "codes/s/core", f"{src} (m={c['m']} scaled to {pq} bytes)")
        over = Coefficient(c["batch_overhead_us"], "us", src)
        per_q = Coefficient(c.get("per_query_us", 0.0), "us", f"{src} (d={c.get('d')}, its nprobe grid)")
        res = dataclasses.replace(res, cpu_server=dataclasses.replace(res.cpu_server, scan_rate=rate,
                                                                      batch_overhead_us=over, per_query_us=per_q))
    if "rpc" in cal:
        net = dataclasses.replace(res.network, rpc_latency_us=Coefficient(cal["rpc"]["latency_us"], "us", src))
        if "coordinator_us" in cal["rpc"]:
            net = dataclasses.replace(net, coordinator_us=Coefficient(cal["rpc"]["coordinator_us"], "us", src))
        res = dataclasses.replace(res, network=net)
    if "llm_node" in cal:
        e, where = cal["llm_node"], f"{src} ({cal['llm_node'].get('source', 'LLM node')})"
        res = dataclasses.replace(res, gpu=dataclasses.replace(
            res.gpu, step_us=Coefficient(e["step_us"], "us", where),
            step_per_seq_us=Coefficient(e["step_per_seq_us"], "us", where)))
    if "fpga_kernel" in cal and res.fpga is not None:
        k = cal["fpga_kernel"]
        eff = Coefficient(k["efficiency"], "codes/cycle/lane", f"measured: {k['source']} (RTL bench, {k.get('mode')} mode)")
        res = dataclasses.replace(res, fpga=dataclasses.replace(res.fpga, efficiency=eff))
    return dataclasses.replace(schema, resources=res)
