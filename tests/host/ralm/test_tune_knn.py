"""The kNN-LM protocol on a tiny random GPT-2: chosen on dev, reported on test, against a dense recomputation;
another model's datastore and empty splits are refused before any scoring; tuned.json round trip."""
import json

import numpy as np
import pytest
import torch

from host.index.builder import BuildConfig
from host.ralm.datastore import DatastoreConfig, build_knn_datastore, check_model, load_datastore, windows
from host.ralm.evaluate import retriever
from host.ralm.leakage import leaked
from host.ralm.tune_knn import tune_knn
from host.ralm.tuned import TUNED, PerplexityConfig, load_tuned, save_tuned
from host.spec.errors import IndexFormatError, InputError
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.knn import interpolate, knn_log_probs

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(120)
VOCAB = 60
CFG = PerplexityConfig(lambdas=(0.0, 0.3, 0.7), ks=(4, 16), temperatures=(1.0, 10.0), nprobes=(1, 4),
                       lut_bits=(8, 16), window=32)


def tiny_model(folder, seed: int, n_embd: int = 32):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_embd=n_embd, n_layer=1, n_head=4, vocab_size=VOCAB, n_positions=64)
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(folder)
    return folder


def engine_of(folder):
    return LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=64))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A datastore over a stream of repeated motifs; dev and test streams drawn from the same motifs, the test
    stream also holding a verbatim copy of a stretch of the training stream."""
    model = tiny_model(tmp_path_factory.mktemp("m0"), 0)
    rng = np.random.default_rng(0)
    motifs = [rng.integers(1, VOCAB, 10) for _ in range(12)]

    def stream(n):
        return np.concatenate([motifs[i] for i in rng.integers(0, 12, n)])
    train = stream(60)
    dev, test = stream(12), np.concatenate([stream(6), train[100:160], stream(6)])
    out = tmp_path_factory.mktemp("ds")
    engine = engine_of(model)
    build_knn_datastore(engine, train.tolist(), out, DatastoreConfig(BuildConfig(nlist=8, m=4), shards=2), window=32)
    ds = load_datastore(out)
    return model, engine, ds, train, dev, test, tune_knn(engine, ds, model, dev, test, CFG, train_ids=train,
                                                         progress=False)


def test_choice_is_the_dev_optimum_and_test_figures_match_a_dense_recomputation(setup):
    model, engine, ds, train, dev, test, res = setup
    t, rows = res["tuned"], res["rows"]
    assert len(rows) == 2 * 2 * 3 * 2 * 2
    assert t.figures["knn_dev"] == min(r["dev"] for r in rows)
    assert t.figures["test_oracle"] <= t.figures["knn_test"]
    # independent reference: score the test stream window by window, retrieve again, mix densely
    with retriever(ds, t.nprobe, t.k, t.lut_bits, progress=False) as retrieve:
        logits, hidden, y = [], [], []
        ids = test.tolist()
        for s, first in windows(len(ids), 32):
            lg, h = engine.score(ids[s: s + 32])
            logits.append(lg[first:len(ids) - 1 - s])
            hidden.append(h[first:len(ids) - 1 - s].float().numpy())
        logits, hidden = torch.cat(logits).float(), np.concatenate(hidden)
        dist, idx = retrieve(hidden)
    y = torch.as_tensor(test[1:])
    base = float(np.exp(-torch.log_softmax(logits, -1).gather(1, y[:, None]).double().mean()))
    knn = knn_log_probs(dist, ds.payload_of(idx), VOCAB, t.temperature)
    mixed = float(np.exp(-interpolate(logits, knn, t.lam).gather(1, y[:, None]).double().mean()))
    assert t.figures["base_test"] == pytest.approx(base, rel=1e-4)
    assert t.figures["knn_test"] == pytest.approx(mixed, rel=1e-4)
    assert t.figures["knn_test"] < t.figures["base_test"]        # the motifs repeat: retrieval helps


def test_leakage_figures(setup):
    *_, train, dev, test, res = setup
    lk = res["tuned"].figures["leakage"]
    mask = leaked(train, test, 16)
    assert lk["positions"] == int(mask.sum()) >= 60 - 16
    assert lk["fraction"] == pytest.approx(mask.mean())
    assert lk["knn_leaked"] < lk["base_leaked"]                  # copied text is what the datastore recalls best


def test_another_models_datastore_is_refused_before_scoring(setup, tmp_path):
    model, engine, ds, train, dev, test, _ = setup

    class NoScoring:
        def __getattr__(self, name):
            raise AssertionError(f"engine.{name} used before the model check")
    for other, key in ((tiny_model(tmp_path / "same-shape", 1), "checkpoint_sha256"),
                       (tiny_model(tmp_path / "wider", 0, n_embd=48), "hidden_size")):
        with pytest.raises(InputError, match=key):
            tune_knn(NoScoring(), ds, other, dev, test, CFG)
    (tmp_path / "tok").mkdir()
    for f in model.iterdir():
        (tmp_path / "tok" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    with pytest.raises(InputError, match="tokenizer_sha256"):
        check_model(ds.meta, tmp_path / "tok")
    with pytest.raises(InputError, match="no config.json"):
        check_model(ds.meta, tmp_path / "nowhere")
    with pytest.raises(InputError, match="no model fingerprint"):
        check_model({k: v for k, v in ds.meta.items() if k != "model_fingerprint"}, model)


def test_empty_split_is_an_error_not_nan(setup):
    model, engine, ds, train, dev, test, _ = setup
    with pytest.raises(InputError, match="empty split"):
        tune_knn(engine, ds, model, dev, test[:1], CFG)


def test_tuned_round_trip_and_rebuild_drops_it(setup, tmp_path):
    model, engine, ds, train, *_, res = setup
    path = save_tuned(tmp_path, res["tuned"])
    assert load_tuned(tmp_path) == res["tuned"]
    assert json.loads(path.read_text())["kind"] == "knn"
    assert load_tuned(tmp_path / "missing") is None
    path.write_text('{"kind": "knn", "nprobe": 0}')
    with pytest.raises(IndexFormatError):
        load_tuned(tmp_path)
    save_tuned(tmp_path, res["tuned"])
    build_knn_datastore(engine, train.tolist(), tmp_path, DatastoreConfig(BuildConfig(nlist=8, m=4), shards=1),
                        window=32)
    assert not (tmp_path / TUNED).exists()


def test_cli_refuses_another_models_datastore_in_one_line(setup, tmp_path, capsys):
    from host.cli import main

    _, _, ds, *_ = setup
    other = tiny_model(tmp_path / "other", 2)
    capsys.readouterr()
    assert main(["ralm", "eval", "knn", "--datastore", str(ds.path), "--model", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anole: error: the datastore was built from another model") and "\n" not in err
    assert main(["ralm", "eval", "knn", "--datastore", str(ds.path), "--model", str(other), "--ks", "0,200"]) == 2
