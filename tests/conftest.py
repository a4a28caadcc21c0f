import hashlib
import logging

import numpy as np
import pytest

from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered
from host.index.index_dir import export_index, load_index

logging.getLogger("numba").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def small_data():
    """20k clustered vectors of d=32 and 200 queries from the same distribution."""
    x = synthetic_clustered(20_200, 32, seed=1, clusters=100)
    return x[:20_000], x[20_000:]


@pytest.fixture(scope="session")
def small_faiss(small_data):
    base, _ = small_data
    return build_ivfpq(base, BuildConfig(nlist=64, m=8, seed=0))


@pytest.fixture(scope="session")
def small_index(small_faiss, tmp_path_factory):
    """The small index exported over 3 shards and loaded back."""
    out = export_index(small_faiss, tmp_path_factory.mktemp("idx"), nshards=3)
    return load_index(out)


@pytest.fixture(scope="session")
def tokenized_gpt2(tmp_path_factory):
    """A tiny random GPT-2 checkpoint with a real byte-level BPE tokenizer (300 tokens, trained on json's
    sources): config.json, model.safetensors, tokenizer.json, tokenizer_config.json."""
    import inspect
    import json

    import torch
    transformers = pytest.importorskip("transformers")
    from llm_node.train import EOS, train_tokenizer

    tok = train_tokenizer([inspect.getsource(json.decoder), inspect.getsource(json.encoder)], 300)
    eos = tok.token_to_id(EOS)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=tok.get_vocab_size(), n_positions=128,
                                  bos_token_id=eos, eos_token_id=eos)
    folder = tmp_path_factory.mktemp("tokenized_gpt2")
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    return folder


def pytest_collection_modifyitems(items):
    """Long simulations (the `sweep` marker) get an hour before pytest-timeout calls them hung; the rest
    keep pyproject.toml's 900 s."""
    for item in items:
        if item.get_closest_marker("sweep") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def tiny_data():
    """3,000 clustered vectors of d=16 and 40 queries: for builds that must stay fast (out of core, import)."""
    x = synthetic_clustered(3_040, 16, seed=3, clusters=30)
    return x[:3_000], x[3_000:]


@pytest.fixture(scope="session")
def small_ip_faiss(small_data):
    """The small data set as an inner-product IndexIVFPQ."""
    base, _ = small_data
    return build_ivfpq(base, BuildConfig(nlist=64, m=8, seed=0, metric="ip"))


class HashEmbedder:
    """Bag of words hashed into 32 dims, unit norm: a deterministic stand-in for MiniLM (same ``encode``)."""

    def encode(self, texts, progress=False):
        x = np.zeros((len(texts), 32), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                x[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 32] += 1
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6)


@pytest.fixture(scope="session")
def hash_embedder():
    """A HashEmbedder: type-1 chunk datastores and flows without MiniLM."""
    return HashEmbedder()
