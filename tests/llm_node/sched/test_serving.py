"""`anole serve llm-node --scheduler ...`: every scheduler serves over TCP with the plain engine's tokens."""
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


def _serve_and_generate(serving_in_thread, engine, prompts, n):
    warmup(engine)                  # what `anole serve llm-node` does before it listens, with every scheduler
    assert not engine.has_unfinished()
    out = []
    with serving_in_thread(LLMNode(engine)) as port, SyncClient("127.0.0.1", port) as c:
        for ids in prompts:
            req = {"prompt_ids": np.array(ids, np.int64), "max_tokens": n, "temperature": 0.0, "ignore_eos": True}
            out.append([int(t) for ev in c.stream(T_GENERATE, req) if "token" in ev for t in [ev["token"]]])
    return out


@pytest.mark.parametrize("name", ["chunked_prefill", "pd_mux", "tempo_mux"])
def test_scheduler_serves_plain_engine_tokens(gpt2_checkpoint, serving_in_thread, name):
    cfg = lambda: EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=64)  # noqa: E731
    prompts = [[1, 2, 3, 4, 5], [7] * 20, [9, 8]]
    plain = LLMEngine(cfg())
    want = [s.completion_ids for s in plain.generate(prompts, SamplingParams(temperature=0, max_tokens=6,
                                                                              ignore_eos=True))]
    engine = serving_engine(cfg(), make_policy(name, LatencyModel.load(LATENCY), tbt=0.1))
    assert isinstance(engine, MuxServingEngine) == (name != "chunked_prefill")
    assert _serve_and_generate(serving_in_thread, engine, prompts, 6) == want
