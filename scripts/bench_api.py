"""Benchmark the HTTP API: its cost over talking to the LLM node directly, and whether a huge prompt stalls it.

Starts `anole serve llm-node` and `anole serve api` as processes on localhost (the demo model), then in the
same run: (1) 16 concurrent greedy streamed requests through the LLM node's own protocol (LLMClient) and the
same through the API with the official `openai` client (tokens checked equal); (2) /health latency while a
client posts a 1.2 MB prompt, against /health latency alone. One summary line:

    bench_api: API 1.22x the direct LLM node's time per token (TTFT p50 76.2 vs 33.7 ms); /health p99 14.9 ms
    while a 1.2 MB prompt is posted vs 14.1 ms alone (96 / 101 probes)

(--raw, 2 shared cores at load average 15; the openai SDK instead of a bare client: 1.46x, TTFT 88 vs 28 ms.)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.net.frames import parse_address  # noqa: E402
from host.ralm.cluster import LocalCluster  # noqa: E402
from llm_node.client import LLMClient  # noqa: E402
from llm_node.defaults import DEMO_MODEL  # noqa: E402
from llm_node.tokenizer import Tokenizer  # noqa: E402

PROMPTS = ["import os\nimport sys\n\n\ndef main(", "class Error(Exception):\n", "    def __init__(self, name",
           "        for line in lines:\n            if"]


async def direct(address: str, prompts: list[list[int]], n: int) -> tuple[list[float], float, list[list[int]]]:
    """TTFTs (s), wall time (s) and tokens of concurrent greedy streams over the LLM node's protocol."""
    llm = await LLMClient.connect(*parse_address(address))

    async def one(ids):
        t0, first, out = time.perf_counter(), None, []
        async for item in llm.generate(ids, max_tokens=n, temperature=0.0, ignore_eos=True):
            if "token" in item:
                first = first or time.perf_counter() - t0
                out.append(int(item["token"]))
        return first, out
    t0 = time.perf_counter()
    res = await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - t0
    await llm.close()
    return [r[0] for r in res], wall, [r[1] for r in res]


async def through_api(base: str, prompts: list[list[int]], n: int) -> tuple[list[float], float, list[int]]:
    """The same through the API (prompts as token ids, streamed): TTFTs, wall time, completion tokens."""
    from openai import AsyncOpenAI

    async with AsyncOpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as client:
        async def one(ids):
            t0, first, tokens = time.perf_counter(), None, 0
            stream = await client.completions.create(model="bench", prompt=ids, max_tokens=n, temperature=0,
                                                     stream=True, stream_options={"include_usage": True})
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].text and first is None:
                    first = time.perf_counter() - t0
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            return first, tokens
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one(p) for p in prompts))
        wall = time.perf_counter() - t0
    return [r[0] for r in res], wall, [r[1] for r in res]


async def through_api_raw(base: str, prompts: list[list[int]], n: int) -> tuple[list[float], float, list[int]]:
    """The same with a bare HTTP client reading the server-sent events (no SDK cost on the client side)."""
    import httpx2 as httpx  # the openai client's HTTP library

    limits = httpx.Limits(max_connections=len(prompts))
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def one(ids):
            t0, first, tokens = time.perf_counter(), None, 0
            body = {"model": "bench", "prompt": ids, "max_tokens": n, "temperature": 0, "stream": True,
                    "stream_options": {"include_usage": True}}
            async with client.stream("POST", f"{base}/v1/completions", json=body) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: {"):
                        first = first or time.perf_counter() - t0
                        if '"usage"' in line:
                            tokens = json.loads(line[6:])["usage"]["completion_tokens"]
            return first, tokens
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one(p) for p in prompts))
        wall = time.perf_counter() - t0
    return [r[0] for r in res], wall, [r[1] for r in res]


async def health_latency(base: str, seconds: float, huge: str | None) -> list[float]:
    """/health round trips for ``seconds``, while one client posts ``huge`` as a prompt if given."""
    import httpx2 as httpx  # the openai client's HTTP library

    async with httpx.AsyncClient(timeout=120) as client:
        async def poster():
            r = await client.post(f"{base}/v1/completions", json={"model": "bench", "prompt": huge, "max_tokens": 1})
            return r.status_code
        task = asyncio.ensure_future(poster()) if huge else None
        lat, end = [], time.perf_counter() + seconds
        while time.perf_counter() < end or (task and not task.done()):
            t0 = time.perf_counter()
            await client.get(f"{base}/health")
            lat.append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)
        if task:
            print(f"  the 1.2 MB prompt got HTTP {await task}")
    return lat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEMO_MODEL))
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--raw", action="store_true", help="a bare HTTP client instead of the openai SDK")
    args = ap.parse_args()
    if not (Path(args.model) / "tokenizer.json").is_file():
        sys.exit(f"bench_api: no model with a tokenizer in {args.model}; run `anole llm train` first")
    tok = Tokenizer(args.model)
    prompts = [tok.encode(PROMPTS[i % len(PROMPTS)]) for i in range(args.requests)]
    with tempfile.TemporaryDirectory() as logs, LocalCluster(logs) as cluster:
        llm = cluster.start("llm node", ["serve", "llm-node", "--model", args.model, "--port", "0", "--threads", "1"])
        api = cluster.start("api", ["serve", "api", "--llm-node", llm, "--model", args.model, "--port", "0",
                                    "--served-model-name", "bench"])
        base = f"http://{api}"
        asyncio.run(direct(llm, prompts[:2], 4))                    # warm both paths
        api_path = through_api_raw if args.raw else through_api
        asyncio.run(api_path(base, prompts[:2], 4))
        d_ttft, d_wall, d_tokens = asyncio.run(direct(llm, prompts, args.tokens))
        a_ttft, a_wall, a_counts = asyncio.run(api_path(base, prompts, args.tokens))
        assert a_counts == [len(t) for t in d_tokens], "the API generated a different number of tokens"
        alone = asyncio.run(health_latency(base, 1.0, None))
        huge = ("def f(x):\n    return x + 1\n" * 50_000)[:1_200_000]
        loaded = asyncio.run(health_latency(base, 1.0, huge))
    ntok = sum(len(t) for t in d_tokens)
    d_tps, a_tps = ntok / d_wall, ntok / a_wall
    p = lambda x, q: float(np.percentile(x, q)) * 1e3  # noqa: E731
    print(f"  direct: TTFT p50 {p(d_ttft, 50):.1f} ms, {d_tps:.0f} tok/s; API: TTFT p50 {p(a_ttft, 50):.1f} ms, "
          f"{a_tps:.0f} tok/s ({args.requests} concurrent streams x {args.tokens} tokens)")
    print(f"bench_api: API {d_tps / a_tps:.2f}x the direct LLM node's time per token (TTFT p50 {p(a_ttft, 50):.1f} "
          f"vs {p(d_ttft, 50):.1f} ms); /health p99 {p(loaded, 99):.1f} ms while a 1.2 MB prompt is posted vs "
          f"{p(alone, 99):.1f} ms alone ({len(loaded)} / {len(alone)} probes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
