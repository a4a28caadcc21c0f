"""What the API talks to: LLM nodes of one model (``LLMPool``: failover before the first token) and, for
retrieval, coordinators over memory nodes driven by the RALM flows (``RalmCoordinator``: type 2 kNN-LM, type 1
chunks). Yields token ids; knows nothing of HTTP."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator

import numpy as np

from host.api.config import ApiConfig
from host.api.errors import ApiError
from host.api.metrics import ApiMetrics
from host.api.text import ChatTemplate
from host.net.frames import E_BAD_REQUEST, RpcError
from host.net.timeouts import within
from host.ralm.datastore import load_datastore
from host.ralm.flows import RalmConfig, RalmCoordinator, RalmError
from host.serve import wire
from host.serve.coordinator import Coordinator
from host.spec.errors import InputError
from llm_node.pool import LLMPool
from llm_node.server import T_INFO
from llm_node.tokenizer import Tokenizer

log = logging.getLogger(__name__)


class ObservedCoordinator(Coordinator):
    """A Coordinator that reports each memory node's scan time, round trip and failures to the metrics."""

    def __init__(self, *args, metrics: ApiMetrics, datastore: str, **kw):
        super().__init__(*args, **kw)
        self.metrics, self.datastore = metrics, datastore

    def _observe_scan(self, replica, seconds: float, result, error: Exception | None) -> None:
        if error is not None:
            self.metrics.node_errors.labels(self.datastore, replica.address).inc()
            return
        labels = (self.datastore, replica.address, str(replica.info["shard"]))
        self.metrics.node_scan.labels(*labels).observe(result[1])
        self.metrics.node_rpc.labels(*labels).observe(seconds)


class Backend:
    """Connects to the nodes (``connect``), warms them up, tokenizes off the event loop and generates."""

    def __init__(self, config: ApiConfig, metrics: ApiMetrics | None = None, embedder=None):
        self.config, self.metrics = config, metrics or ApiMetrics()
        self.tokenizer = Tokenizer(config.model)
        self.chat = ChatTemplate(config.model, config.chat_template)
        self._max_token_chars = self.tokenizer.max_token_chars
        self.embedder = embedder
        self.llm: LLMPool | None = None
        self.info: dict = {}
        self.stores: dict[str, tuple] = {}      # kind -> (datastore, coordinator)
        self._ralms: dict[tuple, RalmCoordinator] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenize")
        self.warm = False

    async def connect(self) -> None:
        cfg = self.config
        self.llm = await LLMPool.connect(cfg.llm_nodes)
        self.info = await self.llm.info()
        if self.tokenizer.vocab_size > int(self.info["vocab_size"]):
            raise InputError(f"the tokenizer of {cfg.model} has {self.tokenizer.vocab_size} tokens, the LLM node's "
                             f"model {self.info['vocab_size']}: give the folder of the model the node serves")
        for kind, path, nodes in (("knn", cfg.knn, cfg.knn_nodes), ("chunks", cfg.chunks, cfg.chunk_nodes)):
            if path is not None:
                ds = load_datastore(path, shards=[])
                coord = ObservedCoordinator(ds.index, list(nodes), metrics=self.metrics, datastore=kind)
                self.stores[kind] = (ds, coord)           # closed by close(), also after a failed connect
                await coord.connect()
        if "chunks" in self.stores and self.embedder is None:
            raise InputError("a chunk datastore needs an embedder")
        if cfg.warmup:
            await self.warmup()
        self.warm = True

    async def warmup(self) -> None:
        """One token from the LLM node and one search per datastore, so no request pays for compilation."""
        async for _ in self.llm.generate([0], max_tokens=1, temperature=0.0):
            pass
        for ds, coord in self.stores.values():
            await coord.search(np.zeros((1, ds.index.d), np.float32), 1)

    async def close(self) -> None:
        if self.llm is not None:
            await self.llm.close()
        for _, coord in self.stores.values():
            await coord.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def max_model_len(self) -> int:
        return int(self.info["max_model_len"])

    @property
    def eos_ids(self) -> frozenset[int]:
        return frozenset(int(t) for t in self.info["eos_token_ids"])

    async def encode(self, text: str, param: str) -> list[int]:
        """Tokenize in a worker thread: a long prompt must not stall the other clients; one that cannot fit the
        context (more characters than max_model_len times the longest token) is refused without tokenizing."""
        if len(text) > self.max_model_len * self._max_token_chars:
            raise ApiError(400, f"the {param} of {len(text)} characters exceeds the model's context of "
                                f"{self.max_model_len} tokens", param=param, code="context_length_exceeded")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.tokenizer.encode, text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)

    def resolve_retrieval(self, options) -> tuple[str, RalmConfig | None]:
        """The request's retrieval kind and settings (the server's defaults where unset); ApiError if invalid."""
        kind = (options.type if options is not None else None) or self.config.retrieval
        if kind == "none":
            return kind, None
        if kind not in self.stores:
            raise ApiError(400, f"this server has no {kind} datastore; retrieval.type is one of "
                                f"{['none', *self.stores]}", param="retrieval.type")
        ds, coord = self.stores[kind]
        over = {} if options is None else {"k": options.k, "nprobe": options.nprobe, "lam": options.lam,
                                           "knn_temperature": options.temperature, "interval": options.interval}
        if over.get("k") is not None and over["k"] > coord.params.k:
            raise ApiError(400, f"retrieval.k must be at most {coord.params.k} (the memory nodes' k)",
                           param="retrieval.k")
        if over.get("nprobe") is not None and over["nprobe"] > ds.index.nlist:
            raise ApiError(400, f"retrieval.nprobe must be at most {ds.index.nlist}", param="retrieval.nprobe")
        cfg = dataclasses.replace(self.config.ralm, **{k: v for k, v in over.items() if v is not None})
        cfg.k = min(cfg.k, coord.params.k)
        return kind, cfg

    def _ralm(self, kind: str, cfg: RalmConfig) -> RalmCoordinator:
        """One RalmCoordinator per (kind, settings): requests with the same settings share its batched search."""
        key = (kind, *dataclasses.astuple(cfg))
        if key not in self._ralms:
            if len(self._ralms) >= 32:
                self._ralms.pop(next(iter(self._ralms)))
            ds, coord = self.stores[kind]
            if kind == "knn":
                ralm = RalmCoordinator(self.llm, cfg, knn=coord, knn_values=ds.values)
            else:
                ralm = RalmCoordinator(self.llm, cfg, chunks=coord, chunk_texts=[c["text"] for c in ds.chunks],
                                       embedder=self.embedder, tokenizer=self.tokenizer)
            ralm.info = self.info
            self._ralms[key] = ralm
        return self._ralms[key]

    async def generate(self, ids: list[int], text: str, sampling: dict, kind: str,
                       ralm_cfg: RalmConfig | None) -> AsyncIterator[int | dict]:
        """Token ids as they come, then {"finish_reason"}; ApiError on failure. Closing it early (a stop string,
        a client gone) cancels the generation on the LLM node, which frees its KV blocks."""
        if kind == "none":
            stream = self.llm.generate(ids, **sampling)
            try:
                async for item in stream:
                    if "token" in item:
                        yield int(item["token"])
                    elif "finish_reason" in item:
                        if item.get("error"):
                            raise ApiError(500, f"LLM node: {item['error']}")
                        yield {"finish_reason": item["finish_reason"]}
            except RpcError as e:
                raise ApiError(400 if e.code == E_BAD_REQUEST else 503, e.message) from None
            finally:
                await stream.aclose()
            return
        async for item in self._generate_ralm(ids, text, sampling, kind, ralm_cfg):
            yield item

    async def _generate_ralm(self, ids, text, sampling, kind, cfg):
        ralm, tokens = self._ralm(kind, cfg), asyncio.Queue()
        sampling = dict(sampling)
        n = sampling.pop("max_tokens")
        if kind == "knn":
            coro = ralm.generate_knn(ids, n, on_token=tokens.put_nowait, **sampling)
        else:
            coro = ralm.generate_chunks(text, n, on_token=tokens.put_nowait, **sampling)
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda _: tokens.put_nowait(None))
        try:
            while (token := await tokens.get()) is not None:
                yield token
            try:
                res = task.result()
            except RalmError as e:
                raise ApiError(503, str(e)) from None
            except (InputError, RpcError) as e:
                raise ApiError(400 if isinstance(e, InputError) or e.code == E_BAD_REQUEST else 503, str(e)) from None
            self.metrics.observe_steps(kind, res.steps)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %s retrieval, %d steps, stage seconds %s", sampling.get("request_id"), kind,
                          len(res.steps), {s: round(sum(st.get(s, 0.0) for st in res.steps), 6)
                                           for s in ("embed", "queue", "coarse", "network", "scan", "merge")})
            yield {"finish_reason": res.finish_reason}
        finally:
            task.cancel()

    async def retrieve(self, queries: list[str], k: int, nprobe: int | None) -> dict:
        """/v1/retrieve: embed the queries (off the event loop), search the chunk datastore."""
        if "chunks" not in self.stores:
            raise ApiError(400, "this server has no chunk datastore", param="query")
        ds, coord = self.stores["chunks"]
        nprobe = nprobe or self.config.ralm.nprobe
        if len(queries) > 64 or k > coord.params.k or nprobe > ds.index.nlist:
            raise ApiError(400, f"need at most 64 queries, k <= {coord.params.k} and nprobe <= {ds.index.nlist}")
        x = await asyncio.get_running_loop().run_in_executor(self._pool, self.embedder.encode, queries)
        res = await coord.search(np.asarray(x, np.float32), nprobe, k)
        data = [{"index": i, "results": [{"id": int(j), "distance": float(d), **ds.chunks[j]}
                                         for j, d in zip(res.ids[i], res.distances[i]) if j >= 0]}
                for i in range(len(queries))]
        return {"object": "list", "data": data, "timings": {s: float(v) for s, v in res.timings.items()}}

    async def check_ready(self) -> tuple[dict, dict]:
        """({check: ok?}, {LLM node: answers?}); the checks: warmed up, an LLM node answers, every memory node
        answers."""
        checks = {"warmed_up": self.warm}
        snapshot = await self.snapshot()
        checks["llm_node"] = any(info is not None for _, info in snapshot["llm"])
        for kind, nodes in snapshot["nodes"].items():
            for address, stats in nodes:
                checks[f"{kind} memory node {address}"] = stats is not None
        return checks, {address: info is not None for address, info in snapshot["llm"]}

    async def snapshot(self) -> dict:
        """The nodes' INFO / STATS now (None for a node out of service or silent for 2 s):
        {"llm": [(address, info)], "nodes": {datastore: [(address, stats)]}, "queues": {datastore: depth}}."""
        async def ask(client, msg_type, **extra):
            try:
                async with within(2.0):
                    out = await client.call(msg_type)
                return {**out, **extra}
            except (RpcError, OSError, asyncio.TimeoutError, AttributeError):
                return None
        llm = [(r.address, await ask(r.client, T_INFO) if r.usable else None)
               for r in (self.llm.nodes.replicas if self.llm is not None else [])]
        nodes = {kind: [(n.address, await ask(n.client, wire.T_STATS, shard=(n.info or {}).get("shard")))
                        for n in coord.nodes] for kind, (_, coord) in self.stores.items()}
        queues = {kind: coord.queued for kind, (_, coord) in self.stores.items()}
        return {"llm": llm, "nodes": nodes, "queues": queues}
