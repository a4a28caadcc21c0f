"""Tiny randomly initialised Hugging Face models of each family, saved as checkpoint folders; LLM nodes served
on a background event loop."""
import asyncio
import contextlib
import threading

import pytest
import torch

transformers = pytest.importorskip("transformers")

torch.set_num_threads(2)

VOCAB = 120
FAMILIES = {
    "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=128,
                                            bos_token_id=0, eos_token_id=0),
    "llama_gqa": lambda: transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                  num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                                  max_position_embeddings=128, eos_token_id=2),
    "llama_tied": lambda: transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                   num_attention_heads=4, num_key_value_heads=4, vocab_size=VOCAB,
                                                   max_position_embeddings=128, tie_word_embeddings=True,
                                                   rope_theta=500.0, eos_token_id=2),
    "llama3_rope": lambda: transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                    num_attention_heads=4, num_key_value_heads=1, vocab_size=VOCAB,
                                                    max_position_embeddings=128, eos_token_id=2,
                                                    rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                                     "factor": 8.0, "low_freq_factor": 1.0,
                                                                     "high_freq_factor": 4.0,
                                                                     "original_max_position_embeddings": 16}),
    "qwen2": lambda: transformers.Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                              num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB,
                                              max_position_embeddings=128, eos_token_id=2),
}


def make_checkpoint(family: str, folder, seed: int = 0):
    """(HF model in eval mode, folder) for a tiny random model of `family`."""
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(FAMILIES[family]()).eval()
    if family == "qwen2":  # HF initialises biases to zero; make them matter
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                torch.nn.init.normal_(proj.bias, std=0.5)
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="session", params=list(FAMILIES))
def checkpoint(request, tmp_path_factory):
    return make_checkpoint(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def gpt2_checkpoint(tmp_path_factory):
    return make_checkpoint("gpt2", tmp_path_factory.mktemp("gpt2_single"))


@pytest.fixture(scope="session")
def llama_checkpoint(tmp_path_factory):
    return make_checkpoint("llama_gqa", tmp_path_factory.mktemp("llama_single"))


@contextlib.contextmanager
def _serving_in_thread(node):
    """Serve ``node`` (an LLMNode) on an event loop in a background thread; yields its port, then closes it."""
    loop = asyncio.new_event_loop()
    _, port = loop.run_until_complete(node.start("127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(node.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="session")
def serving_in_thread():
    """``with serving_in_thread(node) as port:`` an LLMNode served on a background event loop."""
    return _serving_in_thread
