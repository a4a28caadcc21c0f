"""The LLM node over TCP: streaming order, concurrent clients, disconnects, bad requests, scoring."""
import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from host.net.client import RpcClient, SyncClient
from host.net.frames import E_BAD_REQUEST, RemoteError, RpcError
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.server import T_GENERATE, T_INFO, T_SCORE, LLMNode

pytestmark = pytest.mark.timeout(120)
KV_BLOCKS = 64


@pytest.fixture(scope="module")
def node(llama_checkpoint, serving_in_thread):
    """An LLM node on an event loop in a background thread; yields (node, port)."""
    engine = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=KV_BLOCKS, max_model_len=128))
    server = LLMNode(engine)
    with serving_in_thread(server) as port:
        yield server, port


@pytest.fixture(scope="module")
def reference(llama_checkpoint):
    """Greedy completions computed in-process by a separate engine."""
    engine = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=KV_BLOCKS))
    return lambda ids, n: engine.generate([ids], SamplingParams(temperature=0, max_tokens=n,
                                                                ignore_eos=True))[0].completion_ids


def greedy_request(ids, n, **kw):
    return {"prompt_ids": np.array(ids, np.int64), "max_tokens": n, "temperature": 0.0, "ignore_eos": True, **kw}


def wait_idle(port, timeout=20.0):
    with SyncClient("127.0.0.1", port) as c:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = c.call(T_INFO)
            if info["running"] == 0 and info["waiting"] == 0:
                return info
            time.sleep(0.05)
    raise AssertionError("the node did not become idle")


def test_stream_in_order_and_equal_to_in_process(node, reference):
    _, port = node
    with SyncClient("127.0.0.1", port) as c:
        items = list(c.stream(T_GENERATE, greedy_request([5, 6, 7, 8], 12, return_hidden=True)))
    tokens, final = items[:-1], items[-1]
    assert [t["index"] for t in tokens] == list(range(12))
    assert all(a["t"] <= b["t"] for a, b in zip(tokens, tokens[1:]))
    assert [t["token"] for t in tokens] == final["token_ids"].tolist() == reference([5, 6, 7, 8], 12)
    assert tokens[0]["hidden"].shape == (64,) and tokens[0]["hidden"].dtype == np.float32
    assert final["finish_reason"] == "length" and 0 < final["ttft"] <= final["ttlt"] and len(final["tbt"]) == 11


def test_concurrent_clients(node, reference):
    _, port = node
    prompts = [[3 + i] * (2 + 3 * i) for i in range(6)]
    results = [None] * len(prompts)

    def client(i):
        with SyncClient("127.0.0.1", port) as c:
            results[i] = [x["token"] for x in c.stream(T_GENERATE, greedy_request(prompts[i], 15)) if "token" in x]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [reference(p, 15) for p in prompts]


@pytest.mark.parametrize("cancel", [True, False])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the abandoned client generator
def test_disconnect_mid_stream_frees_blocks(node, cancel):
    server, port = node
    before = server.worker.stats["aborted"]
    engine, worker = server.worker.engine, server.worker
    step, steps = engine.step, [0]

    def step_until_cancelled():              # from the 4th step the model waits for the abort to reach the engine
        steps[0] += 1
        give_up = time.monotonic() + 60
        while steps[0] > 3 and worker._calls.empty() and time.monotonic() < give_up:
            time.sleep(0.005)
        return step()
    engine.step = step_until_cancelled
    try:
        c = SyncClient("127.0.0.1", port)
        stream = c.stream(T_GENERATE, greedy_request([4, 5, 6], 120))
        got = [next(stream) for _ in range(3)]
        assert [g["index"] for g in got] == [0, 1, 2]
        if cancel:
            stream.close()                       # T_CANCEL, then the connection closes
        c.close()                                # without it: the client just goes away
        info = wait_idle(port)
    finally:
        engine.step = step
    assert info["free_kv_blocks"] == KV_BLOCKS
    assert server.worker.stats["aborted"] == before + 1


@pytest.mark.parametrize("fields, message", [
    ({"prompt_ids": np.array([1, 2]), "colour": 3}, "unknown field"),
    ({"prompt_ids": np.arange(130) % 100}, "leaves no room"),
    ({"prompt_ids": np.array([1, 500])}, "token id 500"),
    ({"prompt_ids": np.array([], np.int64)}, "empty prompt"),
    ({"prompt_ids": np.array([1.5])}, "integer array"),
    ({"prompt_ids": [1, 2], "top_p": 0.0}, "top_p"),
    ({"prompt_ids": [1, 2], "max_tokens": "many"}, "max_tokens must be int"),
    ({"prompt_ids": [1, 2], "temperature": float("inf")}, "temperature must be a finite number"),
    ({"prompt_ids": [1, 2], "top_p": float("nan")}, "top_p must be a finite number"),
    ({"prompt_ids": np.arange(100) % 50, "max_tokens": 40}, r"max_tokens=40 does not fit.*at most 28"),
    ({"prompt_ids": [1, 2], "deadline_s": 0.0}, "deadline_s must be a number of seconds > 0"),
    ({"prompt": "hello"}, "tokenizer"),
    ({}, "exactly one of"),
])
def test_bad_requests_get_error_frames(node, reference, fields, message):
    _, port = node
    with SyncClient("127.0.0.1", port) as c:
        with pytest.raises(RemoteError, match=message) as e:
            list(c.stream(T_GENERATE, fields))
        assert e.value.code == E_BAD_REQUEST
        items = list(c.stream(T_GENERATE, greedy_request([9, 9], 3)))
    assert items[-1]["token_ids"].tolist() == reference([9, 9], 3)


def test_fuzzed_requests_leave_the_server_serving(node, reference):
    _, port = node
    rng = random.Random(0)
    values = [None, True, -1, 0, 7, 1e9, "x", b"\x00", np.array([1, 2]), np.array([[1]]), [1, "a"], {"a": 1}]
    names = ["prompt_ids", "prompt", "max_tokens", "temperature", "top_k", "top_p", "seed", "stop_token_ids"]
    with SyncClient("127.0.0.1", port) as c:
        for _ in range(60):
            fields = {rng.choice(names): rng.choice(values) for _ in range(rng.randint(0, 4))}
            try:
                for _ in c.stream(T_GENERATE, {**fields, "max_tokens": 2} if "prompt_ids" in fields else fields):
                    pass
            except RemoteError as e:
                assert e.code == E_BAD_REQUEST
        assert list(c.stream(T_GENERATE, greedy_request([8], 4)))[-1]["token_ids"].tolist() == reference([8], 4)
    assert wait_idle(port)["free_kv_blocks"] == KV_BLOCKS


def test_score_matches_engine(node, llama_checkpoint):
    server, port = node
    ids = [3, 14, 15, 92, 65, 35]
    with SyncClient("127.0.0.1", port) as c:
        out = c.call(T_SCORE, {"token_ids": np.array(ids), "return_logits": True})
        info = c.call(T_INFO)
    engine = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=16))
    logits, hidden = engine.score(ids)
    np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["hidden"], hidden.numpy(), atol=1e-5)
    expect = logits.log_softmax(-1)[np.arange(5), ids[1:]].numpy()
    np.testing.assert_allclose(out["logprobs"], expect, atol=1e-5)
    assert info["role"] == "llm-node" and info["architecture"] == "LlamaForCausalLM"


def test_async_client(node, reference):
    from llm_node.client import LLMClient

    _, port = node

    async def go():
        client = await LLMClient.connect("127.0.0.1", port)
        try:
            streams = [[x async for x in client.generate([7, 8, n], max_tokens=5, temperature=0.0,
                                                         ignore_eos=True)] for n in (3, 4)]
            scored = await client.score([7, 8, 9])
            return streams, scored
        finally:
            await client.close()

    streams, scored = asyncio.run(go())
    assert [s[-1]["token_ids"].tolist() for s in streams] == [reference([7, 8, 3], 5), reference([7, 8, 4], 5)]
    assert scored["logprobs"].shape == (2,) and scored["hidden"].shape == (3, 64)


def test_drain_lets_running_generations_finish(llama_checkpoint, reference):
    """SIGTERM's path (LLMNode.drain): the stream in flight completes, the client is told, no new connection."""
    async def main():
        engine = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=KV_BLOCKS, max_model_len=128))
        node = LLMNode(engine)
        _, port = await node.start("127.0.0.1", 0)
        client = await RpcClient.connect("127.0.0.1", port)
        items = []
        async for item in client.stream(T_GENERATE, greedy_request([5, 6, 7], 12)):
            items.append(item)
            if len(items) == 1:
                drained = asyncio.create_task(node.drain(60.0))
        left = await drained
        told = client.draining
        with pytest.raises(RpcError, match="cannot connect"):
            await RpcClient.connect("127.0.0.1", port, connect_timeout=2)
        await client.close()
        await node.close()
        return items, left, told

    items, left, told = asyncio.run(main())
    assert left == 0 and told
    assert items[-1]["token_ids"].tolist() == reference([5, 6, 7], 12)


def test_serve_llm_node_drains_on_sigterm(llama_checkpoint, reference):
    """`anole serve llm-node --drain-timeout`: SIGTERM with a generation in flight; it completes, exit 0, logged."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "serve", "llm-node", "--model", str(llama_checkpoint[1]),
                             "--kv-blocks", str(KV_BLOCKS), "--block-size", "4", "--threads", "1",
                             "--drain-timeout", "7.5", "--port", "0"], cwd=root,
                            env=dict(os.environ, PYTHONPATH=str(root)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, proc.stderr.read()[-2000:] if proc.poll() is not None else line

        async def generate():
            client = await RpcClient.connect(*line.split()[-1].split(":"))
            items = []
            async for item in client.stream(T_GENERATE, greedy_request([5, 6, 7], 24)):
                items.append(item)
                if len(items) == 1:
                    proc.send_signal(signal.SIGTERM)
            await client.close()
            return items

        items = asyncio.run(generate())
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert items[-1]["token_ids"].tolist() == reference([5, 6, 7], 24)
    assert proc.returncode == 0 and "at most 7.5 s" in err and "drained" in err, err[-2000:]


def test_serve_llm_node_refuses_a_negative_drain_timeout(llama_checkpoint, capsys):
    from host.cli import main
    assert main(["serve", "llm-node", "--model", str(llama_checkpoint[1]), "--drain-timeout", "-1"]) == 2
    assert "--drain-timeout must be >= 0" in capsys.readouterr().err
