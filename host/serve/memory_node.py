"""A memory node: one shard of every IVF list behind a scan backend, served over ``host.net``.

The node keeps the centroids and codebooks, builds and quantizes the tables of each (query, probed
list) on its CPU through its backend (the scale depends only on the query and its probed lists, so
every shard agrees) and answers T_SCAN with the shard's top-K.  Scans run in a single worker thread
so the event loop keeps serving info, stats and other connections while a batch is scanned.
"""
from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from host.backends import make_backend
from host.backends.base import ShardResult
from host.index.index_dir import IndexDir, load_index
from host.net.latency import LatencyWindow
from host.net.lifecycle import bind, serve_node
from host.net.server import RpcNode, RpcServer
from host.serve import wire
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MemoryNodeConfig:
    """How a memory node serves: backend name and options, request and frame limits."""

    backend: str = "cpu"
    threads: int = 0          # backend threads; 0 = the backend's default
    backend_options: dict = field(default_factory=dict)   # e.g. {"device": "csim"} for the board backends
    max_nq: int = 4096        # queries per T_SCAN request
    max_frame: int = 64 << 20
    read_timeout_s: float = 30.0
    idle_timeout_s: float | None = 600.0   # close connections silent this long
    max_connections: int = 256
    drain_timeout_s: float = 30.0          # SIGTERM/SIGINT: finish requests in flight for at most this long
    secret: str | None = None              # shared secret (host.net.auth); None: $ANOLE_SECRET or open
    chunk_probes: int = 1024               # (query, probed list) pairs per scan slice; requests take turns per slice

    def __post_init__(self):
        if (self.threads < 0 or self.max_nq < 1 or self.chunk_probes < 1 or self.max_frame < 1024
                or self.max_connections < 1
                or not self.drain_timeout_s >= 0 or (self.idle_timeout_s is not None and not self.idle_timeout_s > 0)):
            raise InputError(f"bad memory node limits: threads={self.threads}, max_nq={self.max_nq}, "
                             f"max_frame={self.max_frame}, max_connections={self.max_connections}, "
                             f"drain_timeout_s={self.drain_timeout_s}, idle_timeout_s={self.idle_timeout_s}")


class MemoryNode(RpcNode):
    """Serves shard ``shard`` of ``index`` (an IndexDir loaded with ``shards=[shard]``) with ``params``."""

    def __init__(self, index: IndexDir, shard: int, params: ScanParams, config: MemoryNodeConfig | None = None):
        if len(index.shards) != 1:
            raise InputError(f"a memory node serves one shard; the IndexDir holds {len(index.shards)}")
        self.config = config = config or MemoryNodeConfig()
        self.index, self.shard, self.params = index, shard, params
        options = dict(config.backend_options)
        if config.threads:
            options["threads"] = config.threads
        self.backend = make_backend(config.backend, index, index.shards[0], params, **options)
        self.fingerprint = wire.index_fingerprint(index.manifest)
        self._sizes = index.shards[0].list_sizes()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"scan{shard}")
        self._turn = asyncio.Lock()             # FIFO: a large request re-queues behind others after each slice
        self.stats = {"requests": 0, "queries": 0, "codes": 0, "scan_s": 0.0, "errors": 0}
        self.latency = LatencyWindow()
        self.server = RpcServer(max_frame=config.max_frame, read_timeout=config.read_timeout_s,
                                idle_timeout=config.idle_timeout_s, max_connections=config.max_connections,
                                secret=config.secret)
        self.server.register(wire.T_INFO, self._info)
        self.server.register(wire.T_SCAN, self._scan)
        self.server.register(wire.T_STATS, self._stats)

    @classmethod
    def open(cls, path, shard: int, lut_bits: int = 16, k: int = 10,
             config: MemoryNodeConfig | None = None) -> "MemoryNode":
        """Load shard ``shard`` of the index directory ``path``; ScanParams take m from the index."""
        index = load_index(path, shards=[shard])
        return cls(index, shard, ScanParams(m=index.m, lut_bits=lut_bits, k=k), config)

    def info(self) -> dict:
        return {"role": "memory-node", "fingerprint": self.fingerprint, "shard": self.shard,
                "nshards": int(self.index.manifest["nshards"]), "d": self.index.d, "nlist": self.index.nlist,
                "ntotal": self.index.shards[0].ntotal, "backend": self.config.backend,
                "max_nq": self.config.max_nq, "params": self.params.to_dict()}

    async def start(self, host: str = "127.0.0.1", port: int = 0, sock=None) -> tuple[str, int]:
        addr = await self.server.start(host, port, sock=sock)
        log.info("memory node: shard %d/%s of %s (%d codes, backend %s) on %s:%d", self.shard,
                 self.index.manifest["nshards"], self.index.path, self.index.shards[0].ntotal,
                 self.config.backend, *addr)
        return addr

    async def close(self) -> None:
        await super().close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.backend.close()

    async def _info(self, fields: dict) -> dict:
        return self.info()

    async def _stats(self, fields: dict) -> dict:
        out = dict(self.stats, **self.latency.percentiles("scan"))
        cycles = getattr(self.backend, "stats", {}).get("cycles")
        if cycles is not None:                       # cycle-accurate backends (verilator): simulated kernel cycles
            out["kernel_cycles"] = int(cycles)
        return out

    async def _scan(self, fields: dict) -> dict:
        try:
            queries, lists, k = wire.parse_scan_request(fields, self.index.d, self.index.nlist,
                                                        self.params.k, self.config.max_nq)
        except InputError:
            self.stats["errors"] += 1
            raise
        t0 = time.perf_counter()
        res = await self._scan_in_turns(queries, lists)
        scan_s = time.perf_counter() - t0
        codes = int(self._sizes[lists].sum())
        st = self.stats
        st["requests"] += 1
        st["queries"] += len(queries)
        st["codes"] += codes
        st["scan_s"] += scan_s
        self.latency.add(scan_s)
        log.debug("shard %d: scanned %d queries, %d codes in %.2f ms", self.shard, len(queries), codes, scan_s * 1e3)
        return wire.scan_response(res, k, scan_s, codes)

    async def _scan_in_turns(self, queries: np.ndarray, lists: np.ndarray) -> ShardResult:
        """Scan in slices of about ``chunk_probes`` (query, list) pairs, taking turns with other requests, so a
        small request waits for one slice of a large one, not all of it."""
        step = max(1, self.config.chunk_probes // lists.shape[1])
        loop, parts = asyncio.get_running_loop(), []
        for lo in range(0, len(queries), step):
            async with self._turn:
                parts.append(await loop.run_in_executor(self._pool, self.backend.search, queries[lo: lo + step],
                                                        lists[lo: lo + step]))
        if len(parts) == 1:
            return parts[0]
        return ShardResult(dist=np.concatenate([p.dist for p in parts]), ids=np.concatenate([p.ids for p in parts]),
                           scale=np.concatenate([p.scale for p in parts]))


def warmup(node: MemoryNode, nq: int = 2) -> None:
    """Run one tiny scan so JIT backends compile before the first request."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((nq, node.index.d)).astype(np.float32)
    node.backend.search(q, np.zeros((nq, 1), np.int64))


def run_memory_node(path, shard: int, host: str, port: int, lut_bits: int = 16, k: int = 10,
                    config: MemoryNodeConfig | None = None, on_ready=None) -> None:
    """Bind (a port in use fails here, before the index loads), load, serve until SIGTERM/SIGINT, then drain;
    ``on_ready(host, port)`` is called once listening."""
    config = config or MemoryNodeConfig()
    sock = bind(host, port)

    async def main():
        node = MemoryNode.open(path, shard, lut_bits=lut_bits, k=k, config=config)
        warmup(node)
        await serve_node(node, host, port, on_ready, drain_timeout=config.drain_timeout_s, sock=sock)
    try:
        asyncio.run(main())
    finally:
        sock.close()
