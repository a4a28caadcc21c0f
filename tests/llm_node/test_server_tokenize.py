"""The LLM node tokenizes text prompts off its event loop and refuses one that cannot fit without tokenizing."""
import asyncio
import threading

import pytest

from host.net.client import SyncClient
from host.net.frames import E_BAD_REQUEST, RemoteError
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.server import T_GENERATE, LLMNode
from llm_node.tokenizer import Tokenizer
from llm_node.train import EOS, train_tokenizer

pytestmark = pytest.mark.timeout(120)
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """An LLM node over a tiny GPT-2 with a real BPE tokenizer, on a background loop: (node, port)."""
    import inspect
    import json

    tok = train_tokenizer([inspect.getsource(json.decoder)], 300)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=tok.get_vocab_size(), n_positions=64,
                                  eos_token_id=tok.token_to_id(EOS))
    folder = tmp_path_factory.mktemp("gpt2_tok")
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    loop = asyncio.new_event_loop()
    server = LLMNode(LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=32)))
    _, port = loop.run_until_complete(server.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server, port
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


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
            with pytest.raises(RemoteError, match="cannot fit the context of 64 tokens") as e:
                list(c.stream(T_GENERATE, {"prompt": "x" * 1_200_000, "max_tokens": 2}))
            assert e.value.code == E_BAD_REQUEST
    finally:
        server.tokenizer.encode = encode
    assert calls == []
