"""The coordinator: coarse IVF search, concurrent fan-out to every memory node, merge by (dist, id).

Concurrent ``search`` calls are batched dynamically: requests that arrive while the pipeline is full
(``max_inflight_batches``) go out together, up to ``max_batch`` queries, optionally waiting ``max_wait_s``
for more; then one T_SCAN per node.  On connect, every node must serve a distinct shard
of the same index (fingerprint of centroids and codebooks) and together all of its shards.  A node
that goes away fails the searches that need it with an ``RpcError`` naming it; the next search
reconnects.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np

from host.backends.local_search import SearchResult
from host.index.index_dir import IndexDir
from host.net.client import RpcClient
from host.net.frames import E_INTERNAL, RpcError, parse_address
from host.serve import wire
from host.spec import reference
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CoordinatorConfig:
    """Batching and failure limits of a coordinator."""

    max_batch: int = 256          # queries per fan-out
    max_wait_s: float = 0.0       # extra wait for more requests once the pipeline has room
    max_inflight_batches: int = 2
    timeout_s: float = 30.0       # per node call
    connect_timeout_s: float = 5.0

    def __post_init__(self):
        if self.max_batch < 1 or self.max_wait_s < 0 or self.max_inflight_batches < 1 or self.timeout_s <= 0:
            raise InputError(f"bad coordinator limits: {self!r}")


@dataclass(slots=True)
class _Node:
    address: str
    client: RpcClient | None = None
    info: dict | None = None
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        shard = "?" if self.info is None else self.info["shard"]
        return f"memory node {self.address} (shard {shard})"


class Coordinator:
    """Searches an index whose shards are served by memory nodes at ``addresses`` ('host:port').

    ``index`` needs only its manifest and centroids (``load_index(path, shards=[])``).  ``params``
    (optional) must agree with the nodes' lut_bits and ask for k <= theirs; default: the nodes' params.
    """

    def __init__(self, index: IndexDir, addresses: list[str], params: ScanParams | None = None,
                 config: CoordinatorConfig | None = None):
        if not addresses:
            raise InputError("give at least one memory node address")
        for a in addresses:
            parse_address(a)
        self.index, self.params, self.config = index, params, config or CoordinatorConfig()
        self.fingerprint = wire.index_fingerprint(index.manifest)
        self.nodes = [_Node(a) for a in addresses]
        self._quantizer = index.coarse_quantizer()
        self._queue: asyncio.Queue | None = None
        self._batcher: asyncio.Task | None = None
        self.stats = {"requests": 0, "queries": 0, "batches": 0, "errors": 0}

    async def connect(self) -> None:
        """Connect to every node and check that together they serve exactly this index's shards."""
        infos = await asyncio.gather(*(self._open(n, named=True) for n in self.nodes))
        seen: dict[int, str] = {}
        for n in self.nodes:
            s = n.info["shard"]
            if s in seen:
                raise InputError(f"{seen[s]} and {n.address} both serve shard {s}; each node must serve a distinct shard")
            seen[s] = n.address
        missing = sorted(set(range(int(self.index.manifest["nshards"]))) - set(seen))
        if missing:
            raise InputError(f"no memory node serves shard(s) {missing} of {self.index.path}; results would be incomplete")
        node_params = {ScanParams.from_dict(i["params"]) for i in infos}
        if len(node_params) > 1:
            raise InputError(f"memory nodes run different kernel parameters: {sorted(map(str, node_params))}")
        if self.params is None:
            self.params = node_params.pop()
        log.info("coordinator: %d memory nodes serve %s", len(self.nodes), self.index.path)

    async def _open(self, node: _Node, named: bool = False) -> dict:
        host, port = parse_address(node.address)
        try:
            client = await RpcClient.connect(host, port, timeout=self.config.timeout_s,
                                             connect_timeout=self.config.connect_timeout_s)
        except RpcError as e:
            raise RpcError(e.code, f"memory node {node.address}: {e.message}" if named else e.message) from None
        try:
            info = await client.call(wire.T_INFO)
            problem = self._check_node(info, node)
        except (KeyError, TypeError, AttributeError) as e:
            await client.close()
            raise InputError(f"memory node {node.address}: malformed INFO answer ({e!r})") from None
        except BaseException:
            await client.close()
            raise
        if problem:
            await client.close()
            raise InputError(f"memory node {node.address}: {problem}")
        node.client, node.info = client, info
        return info

    def _check_node(self, info: dict, node: _Node) -> str | None:
        if info.get("role") != "memory-node":
            return f"is a {info.get('role')!r}, not a memory node"
        if info.get("fingerprint") != self.fingerprint:
            return (f"serves index {info.get('fingerprint')}, but {self.index.path} is {self.fingerprint} "
                    "(a different index or a rebuilt one)")
        if node.info is not None and info["shard"] != node.info["shard"]:
            return f"now serves shard {info['shard']}, it served shard {node.info['shard']} before"
        if info["max_nq"] < self.config.max_batch:
            return f"takes at most {info['max_nq']} queries per request; lower the coordinator's max_batch to that"
        p, theirs = self.params, info["params"]
        if p is not None and (p.lut_bits != theirs["lut_bits"] or p.m != theirs["m"] or p.k > theirs["k"]):
            return f"runs {theirs}; the coordinator needs m={p.m}, lut_bits={p.lut_bits}, k >= {p.k}"
        return None

    async def search(self, queries: np.ndarray, nprobe: int, k: int | None = None) -> SearchResult:
        """queries float32[nq, d] -> SearchResult (ids/dist int64[nq, k], distances float32[nq, k]).

        Joins the dynamic batch; ``timings`` holds seconds per stage of the batch it ran in."""
        queries = self.index.prepare_queries(queries)         # checked, pre-transformed once per query
        k = self.params.k if k is None else k
        if not 1 <= nprobe <= self.index.nlist or not 1 <= k <= self.params.k:
            raise InputError(f"need nprobe in 1..{self.index.nlist} and k in 1..{self.params.k}, not {nprobe}, {k}")
        if self._batcher is None:
            self._queue = asyncio.Queue()
            self._batcher = asyncio.create_task(self._batch_loop())
        loop, step = asyncio.get_running_loop(), self.config.max_batch
        futs = []
        for lo in range(0, len(queries), step):
            futs.append(loop.create_future())
            self._queue.put_nowait((queries[lo: lo + step], nprobe, k, futs[-1], time.perf_counter()))
        self.stats["requests"] += 1
        self.stats["queries"] += len(queries)
        parts = await asyncio.gather(*futs)
        timings = {s: sum(p.timings[s] for p in parts) for s in parts[0].timings}
        return SearchResult(ids=np.concatenate([p.ids for p in parts]), dist=np.concatenate([p.dist for p in parts]),
                            distances=np.concatenate([p.distances for p in parts]), timings=timings)

    async def _batch_loop(self) -> None:
        """Requests queue up while ``max_inflight_batches`` batches are out; when one returns, the queued
        requests (up to ``max_batch`` queries, plus whatever arrives within ``max_wait_s``) go together."""
        slots, carry = asyncio.Semaphore(self.config.max_inflight_batches), None
        while True:
            batch = [carry or await self._queue.get()]
            carry, n = None, len(batch[0][0])
            await slots.acquire()
            deadline = time.perf_counter() + self.config.max_wait_s
            while n < self.config.max_batch:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                        item = self._queue.get_nowait() if not self._queue.empty() else await self._queue.get()
                except TimeoutError:
                    break
                if n + len(item[0]) > self.config.max_batch:
                    carry = item
                    break
                batch.append(item)
                n += len(item[0])
            asyncio.create_task(self._run_batch(batch)).add_done_callback(lambda _: slots.release())

    async def _run_batch(self, batch: list) -> None:
        groups: dict[tuple, list] = {}
        for item in batch:
            groups.setdefault(item[1:3], []).append(item)
        for (nprobe, k), items in groups.items():
            t_start = time.perf_counter()
            try:
                res = await self.search_batch(np.concatenate([it[0] for it in items]), nprobe, k)
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error
                self.stats["errors"] += 1
                for it in items:
                    it[3].done() or it[3].set_exception(e)
                continue
            self.stats["batches"] += 1
            lo = 0
            for q, _, _, fut, t_in in items:
                hi = lo + len(q)
                timings = dict(res.timings, queue=t_start - t_in, batch=float(len(res.ids)))
                fut.done() or fut.set_result(SearchResult(ids=res.ids[lo:hi], distances=res.distances[lo:hi],
                                                          dist=res.dist[lo:hi], timings=timings))
                lo = hi

    async def search_batch(self, queries: np.ndarray, nprobe: int, k: int) -> SearchResult:
        """One fan-out without batching: coarse search, T_SCAN to every node, merge, de-quantize."""
        t0 = time.perf_counter()
        lists = self._coarse(queries, nprobe)
        t1 = time.perf_counter()
        request = wire.scan_request(queries, lists.astype(np.int64), k)
        parts = await asyncio.gather(*(self._scan(n, request, len(queries), k) for n in self.nodes))
        t2 = time.perf_counter()
        p = dataclasses.replace(self.params, k=k)
        dist, ids = reference.merge_topk(p, np.stack([r.dist for r, _ in parts]), np.stack([r.ids for r, _ in parts]))
        scale = parts[0][0].scale
        if any(not np.array_equal(r.scale, scale) for r, _ in parts[1:]):
            raise RpcError(E_INTERNAL, "memory nodes disagree on table scales (different lut_bits or index data)")
        distances = self.index.dequantize(queries, lists, dist, scale, p)
        t3 = time.perf_counter()
        scan = max(s for _, s in parts)
        return SearchResult(ids=ids, distances=distances, dist=dist, timings={
            "coarse": t1 - t0, "scan": scan, "network": t2 - t1 - scan, "merge": t3 - t2, "total": t3 - t0})

    def _coarse(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """Probed lists int64[nq, nprobe]; in this thread (~0.05 ms for a small batch: a thread hop costs more).
        Small batches run on one OpenMP thread: faiss's thread team costs ~10 ms per call on a busy machine."""
        import faiss

        if len(queries) >= 256:
            return self._quantizer.search(queries, nprobe)[1]
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._quantizer.search(queries, nprobe)[1]
        finally:
            faiss.omp_set_num_threads(threads)

    async def _scan(self, node: _Node, request: dict, nq: int, k: int):
        try:
            async with node.lock:
                if node.client is None or node.client.closed:
                    log.info("reconnecting to %s", node.name)
                    await self._open(node)
            fields = await node.client.call(wire.T_SCAN, request)
            return wire.parse_scan_response(fields, nq, k)
        except RpcError as e:
            raise type(e)(e.code, f"{node.name}: {e.message}") from None
        except InputError as e:
            raise RpcError(E_INTERNAL, f"{node.name}: {e}") from None

    async def node_stats(self) -> list[dict]:
        """Each node's counters (requests, queries, codes, scan_s, errors)."""
        return list(await asyncio.gather(*(n.client.call(wire.T_STATS) for n in self.nodes)))

    async def close(self) -> None:
        if self._batcher is not None:
            self._batcher.cancel()
            await asyncio.gather(self._batcher, return_exceptions=True)
        await asyncio.gather(*(n.client.close() for n in self.nodes if n.client is not None))


def remote_search(addresses: str | list[str], index: IndexDir, queries: np.ndarray, nprobe: int,
                  params: ScanParams | None = None, config: CoordinatorConfig | None = None) -> SearchResult:
    """Blocking one-shot search through memory nodes ('H:P,H:P' or a list); the same SearchResult as
    LocalSearcher.search.  ``index`` may be loaded with ``shards=[]``."""
    if isinstance(addresses, str):
        addresses = [a for a in addresses.split(",") if a.strip()]

    async def run():
        coord = Coordinator(index, addresses, params, config)
        try:
            await coord.connect()
            return await coord.search(queries, nprobe)
        finally:
            await coord.close()
    return asyncio.run(run())
