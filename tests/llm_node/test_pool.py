"""llm_node.pool: two LLM nodes behind one client; answers equal the in-process engine's; a node that goes
away is ejected and its requests go to the other; a node of another model is refused."""
import asyncio
import logging

import numpy as np
import pytest

from host.net.frames import E_UNAVAILABLE, RpcError
from host.net.server import RpcServer
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.errors import RequestError
from llm_node.pool import LLMPool
from llm_node.server import T_GENERATE, T_INFO, LLMNode

pytestmark = pytest.mark.timeout(120)


def _engine(path):
    return LLMEngine(EngineConfig(path, block_size=4, num_kv_blocks=64, max_model_len=128))


def test_pool_fails_over_and_readmits(llama_checkpoint, caplog):
    want = _engine(llama_checkpoint[1]).generate([[3, 4, 5]], SamplingParams(temperature=0, max_tokens=6,
                                                                             ignore_eos=True))[0].completion_ids

    async def tokens(pool):
        items = [i async for i in pool.generate([3, 4, 5], max_tokens=6, temperature=0.0, ignore_eos=True)]
        return items[-1]["token_ids"].tolist()

    async def main():
        nodes = [LLMNode(_engine(llama_checkpoint[1])) for _ in range(2)]
        ports = [(await n.start("127.0.0.1", 0))[1] for n in nodes]
        pool = await LLMPool.connect([f"127.0.0.1:{p}" for p in ports], probe_interval_s=0.05)
        both = await asyncio.gather(*(tokens(pool) for _ in range(4)))
        await nodes[0].close()                               # one node goes away
        after = [await tokens(pool) for _ in range(3)]
        score = await pool.score([3, 4, 5, 6])
        nodes[0] = LLMNode(_engine(llama_checkpoint[1]))
        await nodes[0].start("127.0.0.1", ports[0])          # back: re-admitted by the probes
        for _ in range(400):
            if all(r.up for r in pool.nodes.replicas):
                break
            await asyncio.sleep(0.02)
        readmitted = all(r.up for r in pool.nodes.replicas)
        await nodes[1].close()
        last = await tokens(pool)
        await nodes[0].close()
        with pytest.raises(RpcError, match="LLM nodes") as e:
            await tokens(pool)
        await pool.close()
        return both, after, score, readmitted, last, e.value.code

    with caplog.at_level(logging.INFO, logger="host.net.replicas"):
        both, after, score, readmitted, last, code = asyncio.run(main())
    assert all(t == want for t in both + after + [last]) and readmitted and code == E_UNAVAILABLE
    assert score["logprobs"].shape == (3,) and np.isfinite(score["logprobs"]).all()
    ejected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ejected")]
    assert len([m for m in ejected if m.startswith("ejected LLM node")]) == 3   # once per outage


def test_ejection_ends_the_streams_of_a_hung_node(llama_checkpoint):
    """A stand-in node that hangs in generation after ``sent`` items (as a SIGSTOPped one; no pool timeout) is
    ejected: a generation before its first item fails over to the other node and equals the engine's
    output, one under way ends with an error naming the ejection; neither waits any longer."""
    want = _engine(llama_checkpoint[1]).generate([[3, 4, 5]], SamplingParams(temperature=0, max_tokens=6,
                                                                             ignore_eos=True))[0].completion_ids

    async def run(port, info, sent):
        hung = RpcServer()

        async def hung_info(fields):
            return info

        async def hung_generate(fields):
            for i in range(sent):
                yield {"token": 1, "index": i, "t": 0.0}
            await asyncio.Event().wait()
        hung.register(T_INFO, hung_info)
        hung.register(T_GENERATE, hung_generate, stream=True)
        _, hung_port = await hung.start("127.0.0.1", 0)
        pool = await LLMPool.connect([f"127.0.0.1:{hung_port}", f"127.0.0.1:{port}"], timeout=None,
                                     probe_interval_s=3600)
        stand_in, first = pool.nodes.replicas[0], asyncio.Event()

        async def tokens():
            items = []
            async for item in pool.generate([3, 4, 5], max_tokens=6, temperature=0.0, ignore_eos=True):
                items.append(item)
                first.set()
            return items[-1]["token_ids"].tolist()
        task = asyncio.ensure_future(tokens())
        for _ in range(500):                                 # the request is out on the stand-in (first in turn)
            if stand_in.inflight and (first.is_set() or not sent):
                break
            await asyncio.sleep(0.01)
        stand_in.eject("no answer to a probe")
        try:
            return await asyncio.wait_for(task, 60)
        except RpcError as e:
            return e
        finally:
            await pool.close()
            await hung.close()

    async def main():
        node = LLMNode(_engine(llama_checkpoint[1]))
        _, port = await node.start("127.0.0.1", 0)
        one = await LLMPool.connect([f"127.0.0.1:{port}"])
        info = await one.info()
        await one.close()
        out = [await run(port, info, sent) for sent in (0, 1)]
        await node.close()
        return out

    before, under_way = asyncio.run(main())
    assert before == want
    assert isinstance(under_way, RpcError) and under_way.code == E_UNAVAILABLE
    assert "ejected while the request was out (no answer to a probe)" in under_way.message


def test_pool_refuses_another_model(llama_checkpoint):
    """A second node that reports another model (a stand-in answering T_INFO) is refused on connect."""
    async def main():
        node = LLMNode(_engine(llama_checkpoint[1]))
        _, port = await node.start("127.0.0.1", 0)
        one = await LLMPool.connect([f"127.0.0.1:{port}"])
        info = await one.info()
        await one.close()
        other = RpcServer()

        async def other_info(fields):
            return {**info, "vocab_size": info["vocab_size"] + 1}
        other.register(T_INFO, other_info)
        _, other_port = await other.start("127.0.0.1", 0)
        try:
            await LLMPool.connect([f"127.0.0.1:{port}", f"127.0.0.1:{other_port}"])
        finally:
            await other.close()
            await node.close()

    with pytest.raises(RequestError, match="the pool serves"):
        asyncio.run(main())


def test_step_mode_mix_reaches_the_node_of_its_request(llama_checkpoint):
    """Two concurrent step-mode requests on a pool of two nodes: each mix goes to the node running it (lam 1:
    the mixed-in distribution decides the token)."""
    async def steer(pool, first):
        tokens = []
        async for item in pool.generate([1, 2, 3], max_tokens=3, temperature=0.0, ignore_eos=True, step_mode=True):
            if "step" in item:
                await pool.mix(item["seq"], item["step"], [first + item["step"]], [1.0], 1.0)
            elif "token" in item:
                tokens.append(item["token"])
        return tokens

    async def main():
        nodes = [LLMNode(_engine(llama_checkpoint[1])) for _ in range(2)]
        ports = [(await n.start("127.0.0.1", 0))[1] for n in nodes]
        pool = await LLMPool.connect([f"127.0.0.1:{p}" for p in ports])
        got = await asyncio.gather(steer(pool, 7), steer(pool, 20))
        with pytest.raises(RequestError, match="no step-mode request"):
            await pool.mix(999, 0, [1], [1.0], 1.0)
        served = [n.worker.stats["requests"] for n in nodes]
        await pool.close()
        for n in nodes:
            await n.close()
        return got, served

    got, served = asyncio.run(main())
    assert got == [[7, 8, 9], [20, 21, 22]] and served == [1, 1]
