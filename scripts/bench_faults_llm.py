"""The LLM-node phases of ``scripts/bench_faults.py``: two `anole serve llm-node` processes of one small model
behind ``llm_node.pool.LLMPool`` (failover before the first token; a stream under way on a node that is
ejected ends with a clear error) under a bounded load of concurrent greedy generations.  Every
answer is compared with the greedy output each node gave for the same prompt, one request at a time, before
any fault.  Phases: baseline; kill -9 of node 1; its restart on the same port; SIGSTOP of node 1; SIGCONT.

Only these phases:  python scripts/bench_faults.py --llm-only [--llm-model DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from host.net.frames import RpcError  # noqa: E402
from host.net.timeouts import within  # noqa: E402
from llm_node.client import LLMClient  # noqa: E402
from llm_node.defaults import DEMO_MODEL  # noqa: E402
from llm_node.pool import LLMPool  # noqa: E402

PHASES = ("LLM baseline", "LLM kill -9 node", "LLM restart node", "LLM SIGSTOP node", "LLM SIGCONT node")


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--llm-model", type=Path, default=None,
                    help=f"checkpoint folder (default {DEMO_MODEL} if trained, else a tiny random GPT-2)")
    ap.add_argument("--llm-clients", type=int, default=4)
    ap.add_argument("--llm-prompts", type=int, default=24)
    ap.add_argument("--llm-tokens", type=int, default=12, help="greedy tokens per request")
    ap.add_argument("--llm-stall-s", type=float, default=60.0,
                    help="the pool's timeout: a stream that yields nothing for this long fails (default 60, "
                         "LLMPool's default, which the HTTP API uses)")
    ap.add_argument("--llm-deadline-s", type=float, default=3.0,
                    help="a generation without answer or error by then counts as lost (the client's deadline)")


def llm_model(args) -> Path:
    """The demo model if trained, else a tiny random GPT-2 (2 layers, 64 wide) written once under workdir."""
    if args.llm_model is not None:
        return args.llm_model
    if (ROOT / DEMO_MODEL / "model.safetensors").is_file():
        return ROOT / DEMO_MODEL
    folder = args.workdir / "llm-random-gpt2"
    if not (folder / "model.safetensors").is_file():
        import torch  # lazy: only without the demo model
        import transformers  # lazy: as torch

        torch.manual_seed(0)
        cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=512, n_positions=128,
                                      bos_token_id=0, eos_token_id=0)
        transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(folder)
    return folder


class Nodes:
    """The two LLM node processes; ``procs[i]``, ``addrs[i]``."""

    def __init__(self, model: Path, spawn):
        self.model, self.spawn = model, spawn
        self.procs, self.addrs = [], []
        try:
            for _ in range(2):
                p, a = self.start()
                self.procs.append(p)
                self.addrs.append(a)
        except BaseException:
            self.close()
            raise

    def start(self, port: int = 0) -> tuple[subprocess.Popen, str]:
        return self.spawn("llm-node", "--model", str(self.model), "--threads", "1", "--kv-blocks", "256",
                          "--max-num-seqs", "16", port=port)

    def restart(self, i: int) -> None:
        self.procs[i].wait()
        self.procs[i] = self.start(int(self.addrs[i].split(":")[1]))[0]

    def close(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()


async def references(addrs: list[str], prompts: list[np.ndarray], tokens: int) -> list[list[tuple]]:
    """Per node, the greedy completion of each prompt, asked one at a time (before any fault)."""
    out = []
    for a in addrs:
        host, port = a.split(":")
        c = await LLMClient.connect(host, int(port))
        out.append([await completion(c.generate(p, max_tokens=tokens, temperature=0.0, ignore_eos=True))
                    for p in prompts])
        await c.close()
    return out


async def completion(stream) -> tuple:
    last = None
    async for item in stream:
        last = item
    return tuple(np.asarray(last["token_ids"]).tolist())


class LLMLoad:
    """Clients generating greedily in a loop through the pool; records (phase, start, latency, outcome)."""

    def __init__(self, prompts, refs: list[list[tuple]], tokens: int, deadline_s: float):
        self.prompts, self.tokens, self.deadline_s = prompts, tokens, deadline_s
        self.accept = [{r[i] for r in refs} for i in range(len(prompts))]
        self.records: list[tuple[str, float, float, str]] = []
        self.errors: dict[tuple[str, str], int] = {}
        self.phase = "LLM warm-up"

    async def client(self, pool: LLMPool, seed: int, stop: asyncio.Event, limit: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(limit):
            if stop.is_set():
                break
            i = int(rng.integers(len(self.prompts)))
            t0 = time.perf_counter()
            try:
                async with within(self.deadline_s):                # the pool takes no deadline: the client's
                    got = await completion(pool.generate(self.prompts[i], max_tokens=self.tokens, temperature=0.0,
                                                         ignore_eos=True))
                outcome = "correct" if got in self.accept[i] else "wrong"
            except RpcError as e:
                outcome = "failed"                                      # within the deadline
                self.count_error(e.message[:100])
                await asyncio.sleep(0.05)
            except asyncio.TimeoutError:
                outcome = "lost"
                self.count_error("no answer and no error within the deadline")
            self.records.append((self.phase, t0, time.perf_counter() - t0, outcome))

    def count_error(self, why: str) -> None:
        key = (self.phase, why)
        self.errors[key] = self.errors.get(key, 0) + 1


async def run(args, nodes: Nodes, load: LLMLoad) -> None:
    pool = await LLMPool.connect(nodes.addrs, timeout=args.llm_stall_s)
    stop = asyncio.Event()
    clients = [asyncio.create_task(load.client(pool, 100 + i, stop, 100_000)) for i in range(args.llm_clients)]

    def sig(s):
        return lambda: nodes.procs[1].send_signal(s)

    plan = [("LLM warm-up", None), ("LLM baseline", None), ("LLM kill -9 node", sig(signal.SIGKILL)),
            ("LLM restart node", lambda: nodes.restart(1)), ("LLM SIGSTOP node", sig(signal.SIGSTOP)),
            ("LLM SIGCONT node", sig(signal.SIGCONT))]
    try:
        for name, action in plan:
            load.phase = name
            if action:
                await asyncio.to_thread(action)
            await asyncio.sleep(args.phase_s)
        stop.set()
        await asyncio.gather(*clients)
    finally:
        await pool.close()


def llm_bench(args, spawn) -> tuple[LLMLoad, str]:
    """Run the LLM-node phases; -> (the load with its records and errors, a line on the setup)."""
    model = llm_model(args)
    rng = np.random.default_rng(7)
    nodes = Nodes(model, spawn)
    try:
        vocab = json.loads((model / "config.json").read_text())["vocab_size"]
        prompts = [rng.integers(1, vocab, int(rng.integers(3, 12))) for _ in range(args.llm_prompts)]
        refs = asyncio.run(references(nodes.addrs, prompts, args.llm_tokens))
        differ = sum(a != b for a, b in zip(*refs))
        load = LLMLoad(prompts, refs, args.llm_tokens, args.llm_deadline_s)
        asyncio.run(run(args, nodes, load))
    finally:
        nodes.close()
    setup = (f"LLM nodes: 2 x {model.name}, {args.llm_clients} clients, {args.llm_prompts} prompts x "
             f"{args.llm_tokens} greedy tokens, stall timeout {args.llm_stall_s} s, deadline {args.llm_deadline_s} s; "
             f"the two nodes' reference outputs differ on {differ} prompts")
    return load, setup
