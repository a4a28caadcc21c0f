"""The LLM node tokenizes text prompts off its event loop and refuses one that cannot fit without tokenizing."""
import threading

import pytest

from host.net.client import SyncClient
from host.net.frames import E_BAD_REQUEST, RemoteError
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.server import T_GENERATE, LLMNode
from llm_node.tokenizer import Tokenizer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def node(tokenized_gpt2, serving_in_thread):
    """An LLM node over a tiny GPT-2 with a real BPE tokenizer (context 128), on a background loop."""
    server = LLMNode(LLMEngine(EngineConfig(tokenized_gpt2, block_size=4, num_kv_blocks=32)))
    with serving_in_thread(server) as port:
        yield server, port


def test_text_prompt_is_tokenized_in_a_worker_thread(node):
    server, port = node
    encode, threads = server.tokenizer.encode, []

    def recording(text):
        threads.append(threading.current_thread().name)
        return encode(text)
    server.tokenizer.encode = recording
    try:
        with SyncClient("127.0.0.1", port) as c:
            items = list(c.stream(T_GENERATE, {"prompt": "def decode(self, s):", "max_tokens": 3,
                                               "temperature": 0.0, "ignore_eos": True}))
    finally:
        server.tokenizer.encode = encode
    assert items[-1]["num_prompt_tokens"] == len(Tokenizer(server.engine.config.model).encode("def decode(self, s):"))
    assert threads and all(t.startswith("asyncio_") for t in threads)     # the loop's executor, not the loop


def test_a_prompt_that_cannot_fit_is_refused_untokenized(node):
    server, port = node
    calls = []
    encode = server.tokenizer.encode
    server.tokenizer.encode = lambda text: calls.append(len(text)) or encode(text)
    try:
        with SyncClient("127.0.0.1", port) as c:
            with pytest.raises(RemoteError, match="cannot fit the context of 128 tokens") as e:
                list(c.stream(T_GENERATE, {"prompt": "x" * 1_200_000, "max_tokens": 2}))
            assert e.value.code == E_BAD_REQUEST
    finally:
        server.tokenizer.encode = encode
    assert calls == []
