"""The coordinator: coarse IVF search, concurrent fan-out to one replica of every shard, merge by (dist, id).

Concurrent ``search`` calls are batched by ``host.serve.batcher.FairBatcher`` (fair slices of at most
``max_batch`` queries, ``max_inflight_batches`` fan-outs out, a bounded queue); then one T_SCAN per shard,
sent to a replica in service (``host.serve.replicas``), failing over to another when one errors, times out,
is ejected or drains.  On connect every node must serve a shard of the same index (fingerprint of centroids
and codebooks), the one the topology names for it, and together all of its shards.  A request's deadline
(``deadline`` or the serving request's ``deadline_s``) bounds its queueing and is carried to every node.
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
from host.net import deadline as dl
from host.net.client import RpcClient
from host.net.frames import E_INTERNAL, E_TIMEOUT, RpcError, parse_address
from host.net.replicas import Prober, ReplicaSet
from host.net.timeouts import within
from host.serve import wire
from host.serve.batcher import FairBatcher, batch_deadline
from host.serve.replicas import MemoryReplica, identity_problem, replica_sets
from host.serve.topology import Topology, parse_topology
from host.spec import reference
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)
DEADLINE_MARGIN_S = 0.01


@dataclass(slots=True)
class CoordinatorConfig:
    """Batching, queueing, failure and health-probe limits of a coordinator."""

    max_batch: int = 256          # queries per fan-out
    max_wait_s: float = 0.0       # extra wait for more requests once the pipeline has room
    max_inflight_batches: int = 2
    max_queued: int = 1 << 20     # queries waiting; more: E_BUSY
    timeout_s: float = 30.0       # per node call
    connect_timeout_s: float = 5.0
    probe_interval_s: float = 0.25
    probe_timeout_s: float = 0.5  # a replica silent this long is ejected
    deadline_s: float | None = None   # default deadline of a request that brings none
    secret: str | None = None         # shared secret for the memory nodes (host.net.auth); None: $ANOLE_SECRET

    def __post_init__(self):
        if (self.max_batch < 1 or self.max_wait_s < 0 or self.max_inflight_batches < 1 or self.timeout_s <= 0
                or self.max_queued < 1 or self.probe_interval_s <= 0 or self.probe_timeout_s <= 0
                or (self.deadline_s is not None and not self.deadline_s > 0)):
            raise InputError(f"bad coordinator limits: {self!r}")


class Coordinator:
    """Searches an index whose shards are served by memory nodes: ``addresses`` is a topology
    ('0=h:p|h:p,1=h:p', a YAML file, a ``Topology``) or the old list of one 'host:port' per shard.

    ``index`` needs only its manifest and centroids (``load_index(path, shards=[])``).  ``params``
    (optional) must agree with the nodes' lut_bits and ask for k <= theirs; default: the nodes' params.
    """

    def __init__(self, index: IndexDir, addresses, params: ScanParams | None = None,
                 config: CoordinatorConfig | None = None):
        self.topology: Topology = parse_topology(addresses)
        self.index, self.params, self.config = index, params, config or CoordinatorConfig()
        self.topology.check_index(int(index.manifest["nshards"]), index.path)
        self.fingerprint = wire.index_fingerprint(index.manifest)
        self.nodes = [MemoryReplica(a, s if self.topology.declared else None)
                      for s, addrs in self.topology.shards.items() for a in addrs]
        self.shards: dict[int, ReplicaSet] = {}
        self._quantizer = index.coarse_quantizer()
        self._batcher: FairBatcher | None = None
        self._prober: Prober | None = None
        self.stats = {"requests": 0, "queries": 0, "batches": 0, "errors": 0}

    async def connect(self) -> None:
        """Connect to every replica and check that together they serve exactly this index's shards."""
        async def bounded(r: MemoryReplica) -> dict:    # a hung node accepts the connection, then says nothing
            try:
                async with within(self.config.connect_timeout_s):
                    return await self._open(r)
            except asyncio.TimeoutError:
                raise RpcError(E_TIMEOUT, f"no INFO answer within {self.config.connect_timeout_s} s") from None

        results = await asyncio.gather(*(bounded(r) for r in self.nodes), return_exceptions=True)
        for r, res in zip(self.nodes, results):
            if isinstance(res, RpcError):                  # unreachable: fatal in the old form, else out of service
                if not self.topology.declared:
                    raise RpcError(res.code, f"{r.name}: {res.message}")
                r.eject(res.message)
                log.warning("%s is not in service yet: %s", r.name, res.message)
            elif isinstance(res, BaseException):           # a wrong index, shard or parameters: refused
                raise res
            else:
                r.admit(first=True)
        self.shards = replica_sets(self.nodes, self.topology.declared, int(self.index.manifest["nshards"]),
                                   self.index.path)
        for rs in self.shards.values():
            rs.observer = self._observe_scan
        node_params = {ScanParams.from_dict(r.info["params"]) for r in self.nodes if r.info is not None}
        if len(node_params) > 1:
            raise InputError(f"memory nodes run different kernel parameters: {sorted(map(str, node_params))}")
        if self.params is None:
            self.params = node_params.pop()
        cfg = self.config
        self._prober = Prober(self.nodes, self._open, cfg.probe_interval_s, cfg.probe_timeout_s)
        self._batcher = FairBatcher(self._run_batch, max_batch=cfg.max_batch, max_inflight=cfg.max_inflight_batches,
                                    max_wait_s=cfg.max_wait_s, max_queued=cfg.max_queued)
        log.info("coordinator: %d memory nodes serve the %d shards of %s", len(self.nodes), len(self.shards),
                 self.index.path)

    async def _open(self, node: MemoryReplica) -> dict:
        host, port = parse_address(node.address)
        client = await RpcClient.connect(host, port, timeout=self.config.timeout_s,
                                         connect_timeout=self.config.connect_timeout_s, secret=self.config.secret)
        try:
            info = await client.call(wire.T_INFO)
            problem = identity_problem(info, node.shard, self.fingerprint, self.index.path, self.config.max_batch,
                                       self.params)
        except (KeyError, TypeError, AttributeError) as e:
            await client.close()
            raise InputError(f"memory node {node.address}: malformed INFO answer ({e!r})") from None
        except BaseException:
            await client.close()
            raise
        if problem:
            await client.close()
            raise InputError(f"memory node {node.address}: {problem}")
        node.attach(client, info)
        return info

    async def search(self, queries: np.ndarray, nprobe: int, k: int | None = None,
                     deadline: float | None = None) -> SearchResult:
        """queries float32[nq, d] -> SearchResult (ids/dist int64[nq, k], distances float32[nq, k]).

        Joins the fair batching; ``deadline`` (event-loop clock; default: the deadline of the request being
        served, else ``config.deadline_s``) bounds the whole search.  ``timings``: ``total`` and ``queue``
        are this request's wall time, the stages are summed over the batches its slices ran in."""
        queries = self.index.prepare_queries(queries)         # checked, pre-transformed once per query
        k = self.params.k if k is None else k
        if not 1 <= nprobe <= self.index.nlist or not 1 <= k <= self.params.k:
            raise InputError(f"need nprobe in 1..{self.index.nlist} and k in 1..{self.params.k}, not {nprobe}, {k}")
        if self._batcher is None:
            raise InputError("call connect() before search()")
        deadline = dl.earliest(deadline, dl.current(), dl.after(self.config.deadline_s))
        t0 = time.perf_counter()
        self.stats["requests"] += 1
        self.stats["queries"] += len(queries)
        job = await self._batcher.submit(queries, nprobe, k, deadline)
        parts = [job.parts[lo] for lo in sorted(job.parts)]
        timings = {s: sum(p.timings[s] for p in parts) for s in parts[0].timings if s not in ("queue", "batch")}
        timings.update(total=time.perf_counter() - t0, queue=min(p.timings["queue"] for p in parts),
                       batch=max(p.timings["batch"] for p in parts))
        return SearchResult(ids=np.concatenate([p.ids for p in parts]), dist=np.concatenate([p.dist for p in parts]),
                            distances=np.concatenate([p.distances for p in parts]), timings=timings)

    async def _run_batch(self, batch: list) -> None:
        """One fan-out per (nprobe, k) group of the batch's slices; each slice's job gets its rows."""
        groups: dict[tuple, list] = {}
        for item in batch:
            groups.setdefault((item[0].nprobe, item[0].k), []).append(item)
        await asyncio.gather(*(self._run_group(nprobe, k, items) for (nprobe, k), items in groups.items()))

    async def _run_group(self, nprobe: int, k: int, items: list) -> None:
        t_start = time.perf_counter()
        try:
            due = batch_deadline(items)              # node calls end a little earlier, with the shard's name
            res = await self.search_batch(np.concatenate([j.queries[lo:hi] for j, lo, hi in items]), nprobe, k,
                                          deadline=None if due is None else due - DEADLINE_MARGIN_S)
        except Exception as e:  # noqa: BLE001 - every waiting request gets the error
            self.stats["errors"] += 1
            for j, _, _ in items:
                j.fail(e)
            return
        self.stats["batches"] += 1
        at = 0
        for j, lo, hi in items:
            rows = slice(at, at + hi - lo)
            timings = dict(res.timings, queue=t_start - j.t_in, batch=float(len(res.ids)))
            FairBatcher.deliver(j, lo, SearchResult(ids=res.ids[rows], distances=res.distances[rows],
                                                    dist=res.dist[rows], timings=timings))
            at += hi - lo

    async def search_batch(self, queries: np.ndarray, nprobe: int, k: int,
                           deadline: float | None = None) -> SearchResult:
        """One fan-out without batching: coarse search, T_SCAN to one replica per shard, merge, de-quantize."""
        t0 = time.perf_counter()
        if len(queries) >= 256:                      # a large batch: off the event loop, small requests go on
            lists = await asyncio.to_thread(self._coarse, queries, nprobe)
        else:
            lists = self._coarse(queries, nprobe)
        t1 = time.perf_counter()
        request = wire.scan_request(queries, lists.astype(np.int64), k)
        parse = lambda fields: wire.parse_scan_response(fields, len(queries), k)  # noqa: E731
        parts = [p for _, p in await asyncio.gather(*(
            rs.call(wire.T_SCAN, request, timeout=self.config.timeout_s, deadline=deadline, parse=parse)
            for rs in self.shards.values()))]
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

    @property
    def queued(self) -> int:
        """Queries waiting for a batch."""
        return self._batcher.queued if self._batcher is not None else 0

    def _observe_scan(self, replica: MemoryReplica, seconds: float, result, error: Exception | None) -> None:
        """Called after every T_SCAN attempt (result: (ShardResult, scan_s) or None); a hook for metrics."""

    def health(self) -> list[dict]:
        """Each replica: address, shard, in service or not and why."""
        return [{"address": r.address, "shard": -1 if r.shard is None else r.shard, "up": r.up,
                 "reason": r.reason or "", "inflight": r.inflight} for r in self.nodes]

    async def node_stats(self) -> list[dict]:
        """Each replica's counters (requests, queries, codes, scan_s, errors); those out of service give {}."""
        async def one(r: MemoryReplica) -> dict:
            return await r.client.call(wire.T_STATS) if r.usable else {}
        return list(await asyncio.gather(*(one(r) for r in self.nodes)))

    async def close(self) -> None:
        for part in (self._prober, self._batcher):
            if part is not None:
                await part.close()
        await asyncio.gather(*(n.client.close() for n in self.nodes if n.client is not None))


def remote_search(addresses, index: IndexDir, queries: np.ndarray, nprobe: int,
                  params: ScanParams | None = None, config: CoordinatorConfig | None = None) -> SearchResult:
    """Blocking one-shot search through memory nodes (a topology, 'H:P,H:P' or a list); the same SearchResult as
    LocalSearcher.search.  ``index`` may be loaded with ``shards=[]``."""
    async def run():
        coord = Coordinator(index, addresses, params, config)
        try:
            await coord.connect()
            return await coord.search(queries, nprobe)
        finally:
            await coord.close()
    return asyncio.run(run())
