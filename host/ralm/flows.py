"""The RALM coordinator: drives an LLM node (``LLMClient``) and memory nodes (``Coordinator``) over TCP.

Type 2 (kNN-LM): the request runs in the LLM node's step mode. Before each token the node streams the
last-layer hidden state; the coordinator searches the kNN datastore with it (concurrent requests share
one fan-out through the Coordinator's dynamic batching), turns the neighbours into a sparse p_knn
(softmax of -d/T, summed per next token) and sends it back (T_MIX); the node samples from
lambda * p_knn + (1 - lambda) * p_lm.

Type 1 (chunks): every ``interval`` tokens the coordinator embeds the recent text with MiniLM, retrieves the
nearest chunk, and re-prefills the LLM node with [chunk, prompt, generated so far].

Each step is timed: retrieval (embed, queue, coarse, network, scan, merge) and generation (prefill, decode).
docs/ralm.md.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from host.backends.local_search import SearchResult
from host.net.frames import RpcError
from host.spec.errors import AnoleError, InputError
from llm_node.knn import knn_sparse

log = logging.getLogger(__name__)


class RalmError(AnoleError):
    """A RALM request failed (a memory node or the LLM node went away, or a bad setting)."""


@dataclass(slots=True)
class RalmConfig:
    """Retrieval settings of the RALM flows (type 2: lam, knn_temperature; type 1: interval, budgets)."""

    nprobe: int = 8
    k: int = 10
    chunk_nprobe: int | None = None  # type 1; None: nprobe
    lam: float = 0.25
    knn_temperature: float = 0.3
    interval: int = 16
    chunk_tokens: int = 48          # type 1: retrieved text kept in the prompt, in tokens
    query_words: int = 48           # type 1: recent words embedded as the query
    step_wait_s: float = 0.005      # type 2: longest wait for the other running requests' hidden states
    fallback: bool = False          # retrieval failure: go on with the LM alone (and say so) instead of failing
    chunk_template: str = "{chunk}\n\n"  # type 1: how a retrieved chunk precedes the prompt

    def __post_init__(self):
        if not 0 <= self.lam <= 1 or self.knn_temperature <= 0:
            raise InputError(f"need lam in [0, 1] and knn_temperature > 0, not {self.lam}, {self.knn_temperature}")
        if self.interval < 1 or self.chunk_tokens < 1 or self.query_words < 1 or self.nprobe < 1 or self.k < 1:
            raise InputError(f"bad RALM settings: {self!r}")


@dataclass(slots=True)
class RalmResult:
    """token_ids and text of the completion, one timing dict per step (seconds), retrieved chunk texts."""

    token_ids: list[int] = field(default_factory=list)
    text: str | None = None
    finish_reason: str | None = None
    steps: list[dict] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    fallback: str | None = None


def _retrieval_timings(res, t0: float, t1: float) -> dict:
    t = res.timings
    return {"retrieval": t1 - t0, "coarse": t.get("coarse", 0.0), "network": t.get("network", 0.0),
            "scan": t.get("scan", 0.0), "merge": t.get("merge", 0.0), "queue": t.get("queue", 0.0),
            "batch": t.get("batch", 1.0)}


class RalmCoordinator:
    """Type-1 and type-2 generation over an LLM node and memory nodes.

    llm: a connected LLMClient; knn: a connected Coordinator over a kNN datastore's index plus its values
    (int64[n]); chunks: a connected Coordinator over a chunk datastore plus its texts, an Embedder and the
    model's Tokenizer. Call ``check()`` once: it compares the LLM node with the datastores."""

    def __init__(self, llm, config: RalmConfig | None = None, knn=None, knn_values: np.ndarray | None = None,
                 chunks=None, chunk_texts: list[str] | None = None, embedder=None, tokenizer=None):
        self.llm, self.config = llm, config or RalmConfig()
        self.knn, self.knn_values = knn, knn_values
        self.chunks, self.chunk_texts, self.embedder, self.tokenizer = chunks, chunk_texts, embedder, tokenizer
        self.info: dict | None = None
        self._active, self._pending, self._timers, self._tasks = 0, {}, {}, set()

    async def check(self) -> dict:
        """The LLM node's info; InputError if its hidden size or vocabulary does not fit the kNN datastore."""
        self.info = info = await self.llm.info()
        if self.knn is not None:
            if int(info["hidden_size"]) != self.knn.index.d:
                raise InputError(f"the LLM node's hidden size is {info['hidden_size']}, but the kNN datastore's keys "
                                 f"have dim {self.knn.index.d}: build the datastore with this model")
            if len(self.knn_values) and int(self.knn_values.max()) >= int(info["vocab_size"]):
                raise InputError(f"the kNN datastore holds token ids up to {int(self.knn_values.max())}, the LLM "
                                 f"node's vocabulary has {info['vocab_size']}: build the datastore with this model")
        return info

    async def generate_knn(self, prompt_ids, max_tokens: int = 32, on_token=None, **sampling) -> RalmResult:
        """kNN-LM generation; ``sampling``: temperature, top_k, top_p, seed, ignore_eos (default greedy)."""
        if self.knn is None:
            raise InputError("this coordinator has no kNN datastore")
        cfg, out = self.config, RalmResult()
        sampling.setdefault("temperature", 0.0)
        t_prev = time.perf_counter()
        gen_prev = "prefill"
        stream = self.llm.generate(prompt_ids, max_tokens=max_tokens, step_mode=True, **sampling)
        self._active += 1
        try:
            async for item in stream:
                if "step" in item:
                    t0 = time.perf_counter()
                    step = {gen_prev: t0 - t_prev}
                    tokens, probs = await self._knn_step(item, out, step)
                    t_prev, gen_prev = time.perf_counter(), "decode"
                    await self.llm.mix(item["seq"], item["step"], tokens, probs, 0.0 if out.fallback else cfg.lam)
                    out.steps.append(step)
                elif "token" in item:
                    out.token_ids.append(int(item["token"]))
                    if on_token:
                        on_token(int(item["token"]))
                else:
                    out.finish_reason, out.text = item["finish_reason"], item.get("text")
                    if item.get("error"):
                        raise RalmError(f"LLM node: {item['error']}")
        except RpcError as e:
            raise RalmError(f"LLM node {self.llm.rpc.address}: {e.message}") from None
        finally:
            self._active -= 1
            if self._pending.get(None) and len(self._pending[None]) >= self._active:
                self._flush(None)
            await stream.aclose()
        return out

    async def _step_search(self, item: dict):
        """Search with one request's hidden state as part of the step's batch. The fan-out goes when every
        request of the LLM node's engine step (``group``, ``group_size``) has sent its hidden state, or
        after ``step_wait_s`` (the group holds another client's requests too); with an LLM node that does
        not tag its steps, when every running type-2 request has."""
        loop = asyncio.get_running_loop()
        key, size = item.get("group"), item.get("group_size")
        fut = loop.create_future()
        bucket = self._pending.setdefault(key, [])
        bucket.append((np.asarray(item["hidden"], np.float32), fut, time.perf_counter()))
        if len(bucket) >= (size if key is not None and size else self._active):
            self._flush(key)
        elif key not in self._timers:
            self._timers[key] = loop.call_later(self.config.step_wait_s, self._flush, key)
        return await fut

    def _flush(self, key) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        batch = self._pending.pop(key, [])
        if batch:
            task = asyncio.ensure_future(self._search_batch(batch))
            self._tasks.add(task)                      # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _search_batch(self, batch: list) -> None:
        t0 = time.perf_counter()
        try:
            res = await self.knn.search(np.stack([h for h, _, _ in batch]), self.config.nprobe, self.config.k)
        except BaseException as e:  # noqa: BLE001 - every waiting request gets the error
            for _, fut, _ in batch:
                fut.done() or fut.set_exception(e)
            return
        for i, (_, fut, t_in) in enumerate(batch):
            timings = dict(res.timings, queue=res.timings.get("queue", 0.0) + t0 - t_in, batch=float(len(batch)))
            fut.done() or fut.set_result(SearchResult(ids=res.ids[i:i + 1], distances=res.distances[i:i + 1],
                                                      dist=res.dist[i:i + 1], timings=timings))

    async def _knn_step(self, item: dict, out: RalmResult, step: dict):
        cfg = self.config
        if out.fallback:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        t0 = time.perf_counter()
        try:
            res = await self._step_search(item)
        except (RpcError, OSError) as e:
            if not cfg.fallback:
                raise RalmError(f"kNN retrieval failed: {e}") from None
            out.fallback = f"kNN retrieval failed ({e}); generating with the LM alone from token {len(out.steps)}"
            log.warning(out.fallback)
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        step.update(_retrieval_timings(res, t0, time.perf_counter()))
        ids = res.ids[0]
        values = np.where(ids >= 0, self.knn_values[np.maximum(ids, 0)], -1)
        return knn_sparse(res.distances[0], values, cfg.knn_temperature)

    async def generate_chunks(self, prompt: str, max_tokens: int = 32, on_token=None, **sampling) -> RalmResult:
        """Type-1 generation: retrieve a chunk every ``interval`` tokens and re-prefill with it."""
        if self.chunks is None or self.embedder is None or self.tokenizer is None:
            raise InputError("this coordinator has no chunk datastore, embedder or tokenizer")
        cfg, tok, out = self.config, self.tokenizer, RalmResult()
        sampling.setdefault("temperature", 0.0)
        info = self.info or await self.check()
        prompt_ids = tok.encode(prompt)
        while len(out.token_ids) < max_tokens:
            n = min(cfg.interval, max_tokens - len(out.token_ids))
            step: dict = {}
            chunk = await self._retrieve_chunk(prompt + tok.decode(out.token_ids), out, step)
            ctx = tok.encode(cfg.chunk_template.format(chunk=chunk))[: cfg.chunk_tokens] if chunk else []
            room = int(info["max_model_len"]) - n - len(ctx)
            body = (prompt_ids + out.token_ids)[-room:]
            if room < 1 or not body:
                raise RalmError(f"the context of {info['max_model_len']} tokens leaves no room for the prompt")
            t0 = time.perf_counter()
            try:
                async for item in self.llm.generate(ctx + body, max_tokens=n, **sampling):
                    if "token" in item:
                        out.token_ids.append(int(item["token"]))
                        if on_token:
                            on_token(int(item["token"]))
                    elif "finish_reason" in item:
                        summary = item
            except RpcError as e:
                raise RalmError(f"LLM node {self.llm.rpc.address}: {e.message}") from None
            if summary.get("error"):
                raise RalmError(f"LLM node: {summary['error']}")
            step.update(prefill=float(summary["ttft"]), decode=float(summary["ttlt"] - summary["ttft"]),
                        prompt_tokens=int(summary["num_prompt_tokens"]),
                        cached_tokens=int(summary["num_cached_tokens"]),
                        generated=len(summary["token_ids"]), llm=time.perf_counter() - t0)
            out.steps.append(step)
            out.finish_reason = summary["finish_reason"]
            if out.finish_reason != "length":
                break
        out.text = tok.decode(out.token_ids)
        return out

    async def _retrieve_chunk(self, text: str, out: RalmResult, step: dict) -> str | None:
        cfg = self.config
        if out.fallback:
            return None
        t0 = time.perf_counter()
        query = " ".join(text.split()[-cfg.query_words:])
        qx = await asyncio.to_thread(self.embedder.encode, [query])
        t1 = time.perf_counter()
        try:
            res = await self.chunks.search(qx, cfg.chunk_nprobe or cfg.nprobe, 1)
        except (RpcError, OSError) as e:
            if not cfg.fallback:
                raise RalmError(f"chunk retrieval failed: {e}") from None
            out.fallback = f"chunk retrieval failed ({e}); generating without retrieval from token {len(out.token_ids)}"
            log.warning(out.fallback)
            return None
        step.update(_retrieval_timings(res, t1, time.perf_counter()), embed=t1 - t0)
        step["retrieval"] += t1 - t0
        i = int(res.ids[0, 0])
        chunk = self.chunk_texts[i] if i >= 0 else None
        if chunk is not None:
            out.retrieved.append(chunk)
        return chunk
