"""Datastore builders: windows cover every position once, batched scoring equals one-at-a-time scoring."""
import numpy as np
import pytest
import torch

from host.ralm.datastore import knn_keys, windows
from host.ralm.evaluate import corpus_questions, hit_rate
from host.spec.errors import InputError
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.knn import knn_log_probs, knn_sparse

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50, n_positions=64)
    folder = tmp_path_factory.mktemp("gpt2_ds")
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(folder)
    return LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=64))


@pytest.mark.parametrize("n,window", [(2, 8), (7, 8), (8, 8), (9, 8), (100, 16), (101, 3)])
def test_windows_cover_every_position_once(n, window):
    covered = []
    for s, first in windows(n, window):
        covered += range(s + first, min(s + window, n - 1))
    assert covered == list(range(n - 1))


def test_windows_reject_tiny_window():
    with pytest.raises(InputError):
        windows(10, 1)


def test_batched_keys_equal_single_window_scoring(engine):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, 300).tolist()
    keys, values = knn_keys(engine, ids, window=32, progress=False)
    assert len(keys) == len(values) == len(ids) - 1
    np.testing.assert_array_equal(values, ids[1:])
    for s, first in windows(len(ids), 32):
        _, hidden = engine.score(ids[s: s + 32])
        w = hidden[first:].float().numpy()
        np.testing.assert_allclose(keys[s + first: s + first + len(w)], w[: len(ids) - 1 - s - first],
                                   rtol=1e-4, atol=1e-5)
    logits, _ = engine.score(ids[:20])
    many = engine.score_many([ids[:20], ids[:7]])
    torch.testing.assert_close(many[0][0], logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(many[1][0], logits[:7], rtol=1e-4, atol=1e-4)


def test_sparse_knn_equals_dense_row():
    dist = np.array([0.5, 0.2, np.inf, 0.9, 0.2], np.float32)
    tok = np.array([7, 3, -1, 7, 11])
    t, p = knn_sparse(dist, tok, 0.3)
    dense = knn_log_probs(dist[None], tok[None], 20, 0.3).exp()[0].numpy()
    assert t.tolist() == [3, 7, 11]
    np.testing.assert_allclose(p, dense[t], rtol=1e-6)
    assert knn_sparse(np.full(3, np.inf, np.float32), np.full(3, -1), 1.0)[0].size == 0


def test_corpus_questions_and_hit_rate():
    chunks = [{"source": f"pkg/mod{i}.py:f{i}", "text": " ".join(f"w{i}_{j}" for j in range(60))} for i in range(30)]
    for kind in ("name", "excerpt"):
        qs = corpus_questions(chunks, 10, kind)
        assert len(qs) == 10
        by_answer = {a: next(c["text"] for c in chunks if a in c["text"]) for _, a in qs}
        assert hit_rate(qs, lambda q: [[by_answer[a]] for _, a in qs]) == 1.0
        assert hit_rate(qs, lambda q: [[chunks[0]["text"] + "x"]] * len(q)) <= 0.2
