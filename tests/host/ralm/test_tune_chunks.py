"""The type-1 protocol: questions split into dev and test, nprobe chosen on dev, test hit rates against a
brute-force recomputation, exact search in the same run."""

import numpy as np
import pytest

from host.index.builder import BuildConfig
from host.ralm.corpus import Chunk
from host.ralm.datastore import DatastoreConfig, build_chunk_datastore, load_datastore
from host.ralm.tune_chunks import KINDS, dev_test_questions, tune_chunks
from host.spec.errors import InputError


@pytest.fixture(scope="module")
def store(tmp_path_factory, hash_embedder):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    chunks = [Chunk(f"pkg/mod{i // 3}.py:f{i}", " ".join(rng.choice(words, 50))) for i in range(300)]
    x = hash_embedder.encode([c.text for c in chunks])
    out = tmp_path_factory.mktemp("chunks")
    build_chunk_datastore(chunks, x, out, DatastoreConfig(BuildConfig(nlist=16, m=8), shards=2))
    return load_datastore(out), x


def test_questions_split_in_halves_without_overlap(store):
    ds, _ = store
    qs = dev_test_questions(ds.chunks, 20, seed=0)
    for kind in KINDS:
        dev, test = qs[kind]["dev"], qs[kind]["test"]
        assert len(dev) == len(test) == 10 and not set(dev) & set(test)


def test_choice_on_dev_and_rates_on_test(store, hash_embedder):
    ds, x = store
    res = tune_chunks(ds, hash_embedder, x, 20, nprobes=(1, 4, 16), lut_bits=(16,), seed=0)
    t, rows = res["tuned"], res["rows"]
    dev10 = [np.mean([r["rates"][(k, "dev", 10)] for k in KINDS]) for r in rows]
    assert t.nprobe == rows[int(np.argmax(dev10))]["nprobe"]          # first (cheapest) among equals
    qs = dev_test_questions(ds.chunks, 20, seed=0)
    emb = hash_embedder
    for kind in KINDS:                                                 # exact search by brute force
        test = qs[kind]["test"]
        order = np.argsort(-(emb.encode([q for q, _ in test]) @ x.T), axis=1)
        for top in (1, 10):
            want = np.mean([any(a in ds.chunks[i]["text"] for i in row[:top]) for (_, a), row in zip(test, order)])
            assert t.figures["exact_test"][f"{kind}@{top}"] == pytest.approx(want)
        assert t.figures["test"][f"{kind}@10"] == res["rows"][[r["nprobe"] for r in rows].index(t.nprobe)][
            "rates"][(kind, "test", 10)]
    assert rows[-1]["rates"][("excerpt", "test", 10)] >= rows[0]["rates"][("excerpt", "test", 10)] - 0.2


def test_wrong_inputs(store, hash_embedder):
    ds, x = store
    with pytest.raises(InputError, match="embeddings"):
        tune_chunks(ds, hash_embedder, x[:10], 10)
    with pytest.raises(InputError):
        tune_chunks(ds, hash_embedder, x, 1)              # one question of each kind: no test half
