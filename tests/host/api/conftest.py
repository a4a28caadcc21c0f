"""An LLM node serving a tiny random GPT-2 with a real tokenizer (tests/conftest.py ``tokenized_gpt2``) and an API
server in front, all on one event loop in a background thread (loopback only)."""
import asyncio
import contextlib
import threading

import pytest

from host.api.config import ApiConfig
from host.api.server import ApiServer
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.server import LLMNode

KV_BLOCKS = 64


def make_engine(model_dir) -> LLMEngine:
    return LLMEngine(EngineConfig(model_dir, block_size=4, num_kv_blocks=KV_BLOCKS))


class Loop:
    """An event loop in a daemon thread; ``run(coro)`` runs a coroutine on it and waits for the result."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextlib.contextmanager
def serving(model_dir, embedder=None, llm_nodes=1, **api_kw):
    """Yields (loop, llm node, its address, api server, the API's base URL); with llm_nodes > 1, the list of
    LLM nodes and their addresses 'H:P,H:P'."""
    loop = Loop()
    nodes = [LLMNode(make_engine(model_dir)) for _ in range(llm_nodes)]
    address = ",".join("%s:%d" % loop.run(node.start("127.0.0.1", 0)) for node in nodes)
    api = ApiServer(ApiConfig(model=model_dir, llm_node=address, served_model_name="tiny", **api_kw),
                    embedder=embedder)
    try:
        ahost, aport = loop.run(api.start("127.0.0.1", 0))
        yield loop, nodes[0] if llm_nodes == 1 else nodes, address, api, f"http://{ahost}:{aport}"
    finally:
        loop.run(api.close())
        for node in nodes:
            loop.run(node.close())
        loop.stop()


@pytest.fixture(scope="session")
def api_tools():
    """(make_engine, serving) for tests that start their own servers."""
    return make_engine, serving


@pytest.fixture(scope="module")
def api(tokenized_gpt2):
    with serving(tokenized_gpt2) as s:
        yield s
