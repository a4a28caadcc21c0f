"""`anole serve llm-node --scheduler ...`: every scheduler serves over TCP with the plain engine's tokens."""
import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from host.net.client import SyncClient
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.sched.latency import LatencyModel
from llm_node.sched.registry import make_policy
from llm_node.sched.serving import MuxServingEngine, serving_engine
from llm_node.server import T_GENERATE, LLMNode, warmup

pytestmark = pytest.mark.timeout(120)
LATENCY = Path(__file__).parents[1] / "sim" / "data" / "latency-cpu.json"


def _serve_and_generate(engine, prompts, n):
    warmup(engine)                  # what `anole serve llm-node` does before it listens, with every scheduler
    assert not engine.has_unfinished()
    loop = asyncio.new_event_loop()
    node = LLMNode(engine)
    _, port = loop.run_until_complete(node.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        out = []
        with SyncClient("127.0.0.1", port) as c:
            for ids in prompts:
                req = {"prompt_ids": np.array(ids, np.int64), "max_tokens": n, "temperature": 0.0, "ignore_eos": True}
                out.append([int(t) for ev in c.stream(T_GENERATE, req) if "token" in ev for t in [ev["token"]]])
        return out
    finally:
        asyncio.run_coroutine_threadsafe(node.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.parametrize("name", ["chunked_prefill", "pd_mux", "tempo_mux"])
def test_scheduler_serves_plain_engine_tokens(gpt2_checkpoint, name):
    cfg = lambda: EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=64)  # noqa: E731
    prompts = [[1, 2, 3, 4, 5], [7] * 20, [9, 8]]
    plain = LLMEngine(cfg())
    want = [s.completion_ids for s in plain.generate(prompts, SamplingParams(temperature=0, max_tokens=6,
                                                                              ignore_eos=True))]
    engine = serving_engine(cfg(), make_policy(name, LatencyModel.load(LATENCY), tbt=0.1))
    assert isinstance(engine, MuxServingEngine) == (name != "chunked_prefill")
    assert _serve_and_generate(engine, prompts, 6) == want
