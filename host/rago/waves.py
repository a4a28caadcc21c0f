"""The kNN-LM system under measurement: waves of concurrent requests, the LLM node alone and retrieval alone."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from host.serve.coordinator import Coordinator


class Waves:
    """Waves of ``c`` concurrent kNN-LM requests, alternated with the LLM node alone (step mode, retrieval
    answered at once) and retrieval alone (searches of hidden states), so all three see the same load."""

    def __init__(self, cfg, coord: Coordinator, llm, ralm, vocab: int):
        """`cfg`: the pipeline's PipelineConfig (prompt_tokens, max_tokens, k, nprobe, waves, seed)."""
        self.cfg, self.coord, self.llm, self.ralm, self.vocab = cfg, coord, llm, ralm, vocab
        self.rng = np.random.default_rng(cfg.seed)
        self.hidden: list[np.ndarray] = []       # hidden states the LLM node sent, queries for retrieval_alone

    def prompts(self, c: int) -> list[list[int]]:
        return [self.rng.integers(1, self.vocab, self.cfg.prompt_tokens).tolist() for _ in range(c)]

    async def ralm_request(self, prompt) -> tuple[float, list[float]]:
        """(start, time of each token) of one kNN-LM generation."""
        times = []
        t0 = time.perf_counter()
        await self.ralm.generate_knn(prompt, self.cfg.max_tokens, ignore_eos=True,
                                     on_token=lambda _: times.append(time.perf_counter()))
        return t0, times

    async def llm_alone(self, prompt) -> list[float]:
        """Step mode without retrieval: each step is answered at once with a made-up distribution of
        ``k`` tokens, so the LLM node does all its per-token work (hidden state out, mix in, mixing)."""
        k = self.cfg.k
        toks = self.rng.choice(self.vocab, k, replace=False).astype(np.int64)
        probs = np.full(k, 1.0 / k, np.float32)
        times = []
        async for item in self.llm.generate(prompt, max_tokens=self.cfg.max_tokens, step_mode=True, ignore_eos=True):
            if "step" in item:
                self.hidden.append(item["hidden"])
                await self.llm.mix(item["seq"], item["step"], toks, probs, self.ralm.config.lam)
            elif "token" in item:
                times.append(time.perf_counter())
        return times

    async def retrieval_alone(self, c: int) -> tuple[float, int]:
        """Seconds of one search of ``c`` hidden states (from the LLM node) and the codes it scanned."""
        q = np.stack([self.hidden[int(i)] for i in self.rng.integers(0, len(self.hidden), c)])
        before = await self.coord.node_stats()
        t0 = time.perf_counter()
        await self.coord.search(q, self.cfg.nprobe, self.cfg.k)
        seconds = time.perf_counter() - t0
        after = await self.coord.node_stats()
        return seconds, sum(a["codes"] - b["codes"] for a, b in zip(after, before))

    async def measure(self, c: int) -> tuple[dict, dict, dict]:
        """(run, engine step, retrieval) rows for concurrency ``c`` over ``cfg.waves`` waves."""
        gaps, searches, ttft, tpot, walls, queries, codes = [], [], [], [], [], 0, 0
        for _ in range(self.cfg.waves):
            for times in await asyncio.gather(*(self.llm_alone(p) for p in self.prompts(c))):
                gaps.append((times[-1] - times[0]) / (len(times) - 1))
            searches += [await self.retrieval_alone(c) for _ in range(4)]
            before = await self.coord.node_stats()
            t0 = time.perf_counter()
            res = await asyncio.gather(*(self.ralm_request(p) for p in self.prompts(c)))
            walls.append(time.perf_counter() - t0)
            for start, times in res:
                ttft.append(times[0] - start)
                tpot.append((times[-1] - times[0]) / (len(times) - 1))
            after = await self.coord.node_stats()
            queries += after[0]["queries"] - before[0]["queries"]
            codes += sum(a["codes"] - b["codes"] for a, b in zip(after, before))
        step = {"batch": c, "step_s": float(np.median(gaps))}
        search = {"what": "remote_scan", "nodes": len(self.coord.nodes), "nq": c, "nprobe": self.cfg.nprobe,
                  "codes": int(np.median([n for _, n in searches])),
                  "seconds": float(np.median([t for t, _ in searches]))}
        run = {"concurrency": c, "requests": c * self.cfg.waves, "ttft_ms": 1e3 * float(np.median(ttft)),
               "tpot_ms": 1e3 * float(np.median(tpot)), "qps": c / float(np.median(walls)),
               "codes_per_query": codes / max(queries, 1), "queries": int(queries)}
        return run, step, search
