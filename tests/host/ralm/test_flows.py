"""RALM flows over real localhost servers (memory nodes + an LLM node, framed TCP) with a tiny random GPT-2."""
import asyncio
import contextlib

import numpy as np
import pytest
import torch

from host.index.builder import BuildConfig
from host.backends.local_search import LocalSearcher
from host.ralm.corpus import Chunk
from host.ralm.datastore import DatastoreConfig, build_chunk_datastore, build_knn_datastore, load_datastore
from host.ralm.flows import RalmConfig, RalmCoordinator, RalmError
from host.serve.coordinator import Coordinator, CoordinatorConfig
from host.serve.memory_node import MemoryNode
from host.spec.errors import IndexFormatError, InputError
from host.spec.scan_params import ScanParams
from llm_node.client import LLMClient
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.knn import interpolate, knn_log_probs
from llm_node.server import LLMNode

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.timeout(120)
VOCAB, K, NPROBE = 120, 8, 4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=128,
                                  bos_token_id=0, eos_token_id=0)
    folder = tmp_path_factory.mktemp("gpt2_ralm")
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(folder)
    return folder


def engine_of(model_dir):
    return LLMEngine(EngineConfig(model_dir, block_size=4, num_kv_blocks=128))


@pytest.fixture(scope="module")
def knn_store(model_dir, tmp_path_factory):
    """A kNN datastore over a repetitive random token stream (so neighbours predict well), 2 shards."""
    rng = np.random.default_rng(0)
    motifs = [rng.integers(1, VOCAB, 12) for _ in range(20)]
    stream = np.concatenate([motifs[i] for i in rng.integers(0, 20, 300)]).tolist()
    out = tmp_path_factory.mktemp("knn")
    build_knn_datastore(engine_of(model_dir), stream, out, DatastoreConfig(BuildConfig(nlist=16, m=8), shards=2), window=64)
    return out, motifs


class CharTokenizer:
    def encode(self, text):
        return [1 + ord(c) % (VOCAB - 1) for c in text]

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


@pytest.fixture(scope="module")
def chunk_store(tmp_path_factory, hash_embedder):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(400)]
    chunks = [Chunk(f"doc{i}", " ".join(rng.choice(words, 20))) for i in range(300)]
    out = tmp_path_factory.mktemp("chunks")
    x = hash_embedder.encode([c.text for c in chunks])
    build_chunk_datastore(chunks, x, out, DatastoreConfig(BuildConfig(nlist=16, m=8), shards=2))
    return out, chunks


@contextlib.asynccontextmanager
async def cluster(model_dir, store, k=K):
    """Memory nodes for every shard of ``store``, an LLM node, and a connected Coordinator + LLMClient."""
    nodes = [MemoryNode.open(store / "index", s, k=k) for s in range(2)]
    addrs = [await n.start("127.0.0.1", 0) for n in nodes]
    llm_node = LLMNode(engine_of(model_dir))
    host, port = await llm_node.start("127.0.0.1", 0)
    ds = load_datastore(store, shards=[])
    coord = Coordinator(ds.index, [f"{h}:{p}" for h, p in addrs], ScanParams(m=ds.index.m, k=k),
                        CoordinatorConfig())
    await coord.connect()
    llm = await LLMClient.connect(host, port)
    try:
        yield ds, coord, llm, nodes
    finally:
        await llm.close()
        await coord.close()
        await llm_node.close()
        for n in nodes:
            await n.close()


def in_process_knn(model_dir, store, prompts, n, lam, temp):
    """The same kNN-LM computed in one process: LocalSearcher + knn_log_probs + interpolate in a logits processor."""
    ds = load_datastore(store)
    searcher = LocalSearcher(ds.index, ScanParams(m=ds.index.m, k=K))

    def knn(token_ids, logits, hidden):
        res = searcher.search(hidden.float().numpy()[None], NPROBE)
        lp = knn_log_probs(res.distances, ds.payload_of(res.ids), logits.shape[-1], temp)
        return interpolate(logits[None], lp, lam)[0]
    seqs = engine_of(model_dir).generate(prompts, SamplingParams(temperature=0, max_tokens=n, ignore_eos=True,
                                                                 logits_processor=knn))
    return [s.completion_ids for s in seqs]


def test_knn_lm_over_tcp_equals_in_process(model_dir, knn_store):
    store, motifs = knn_store
    prompts = [motifs[i][:6].tolist() for i in (0, 3, 7)]
    cfg = RalmConfig(nprobe=NPROBE, k=K, lam=0.9, knn_temperature=0.5)

    async def run():
        async with cluster(model_dir, store) as (ds, coord, llm, _):
            ralm = RalmCoordinator(llm, cfg, knn=coord, knn_values=ds.values)
            await ralm.check()
            res = await asyncio.gather(*(ralm.generate_knn(p, max_tokens=10, ignore_eos=True) for p in prompts))
            plain = [[i["token"] async for i in llm.generate(p, max_tokens=10, temperature=0.0, ignore_eos=True)
                      if "token" in i] for p in prompts]
            return res, plain, coord.stats
    res, plain, stats = asyncio.run(run())
    want = in_process_knn(model_dir, store, prompts, 10, cfg.lam, cfg.knn_temperature)
    assert [r.token_ids for r in res] == want
    assert [r.token_ids for r in res] != plain                # retrieval changed the text
    for r, p in zip(res, prompts):
        assert len(r.steps) == 10 and {"retrieval", "scan", "network", "coarse", "merge"} <= set(r.steps[1])
        assert "prefill" in r.steps[0] and "decode" in r.steps[1]
    assert stats["batches"] < stats["queries"]               # concurrent requests shared fan-outs
    # the LLM node tags each engine step: once all three decode together, each step is one fan-out of 3
    assert [s["batch"] for r in res for s in r.steps[2:]] == [3.0] * 3 * 8


def test_step_group_emits_a_whole_engine_step_at_once():
    from llm_node.step_mix import StepGroup, StepMixer

    sent, group = [], StepGroup()
    mixers = [StepMixer(sent.append, VOCAB, timeout=5, group=group) for _ in range(3)]
    for m in mixers:
        m.submit([1], torch.zeros(VOCAB), torch.ones(4))
    assert sent == []                                        # held until the first request waits
    for m in mixers:
        m._fut.set_result((np.zeros(0, np.int64), np.zeros(0, np.float32), 0.0))
    mixers[0]([1], torch.zeros(VOCAB), torch.ones(4))
    assert [(i["seq"], i["group"], i["group_size"]) for i in sent] == [(m.key, 1, 3) for m in mixers]
    mixers[1]([1], torch.zeros(VOCAB), torch.ones(4))
    assert len(sent) == 3                                    # nothing new: the step's items went out once


def test_type1_retrieves_and_reprefills(model_dir, chunk_store, hash_embedder):
    store, chunks = chunk_store
    cfg = RalmConfig(nprobe=NPROBE, k=K, interval=4, chunk_tokens=30, query_words=20)

    async def run():
        async with cluster(model_dir, store) as (ds, coord, llm, _):
            ralm = RalmCoordinator(llm, cfg, chunks=coord, chunk_texts=[c["text"] for c in ds.chunks],
                                   embedder=hash_embedder, tokenizer=CharTokenizer())
            return await ralm.generate_chunks(prompt, max_tokens=10, ignore_eos=True)
    prompt = " ".join(chunks[5].text.split()[:10])
    res = asyncio.run(run())
    assert len(res.token_ids) == 10 and len(res.steps) == 3       # 4 + 4 + 2 tokens, a retrieval before each
    assert res.retrieved[0] == chunks[5].text                     # the prompt's own chunk is the nearest
    prompt_len = len(CharTokenizer().encode(prompt))
    assert res.steps[0]["prompt_tokens"] == 30 + prompt_len
    assert res.steps[1]["prompt_tokens"] == 30 + prompt_len + 4  # re-prefilled with the generated tokens
    assert all(s["embed"] > 0 and s["prefill"] > 0 for s in res.steps)


def test_hidden_size_mismatch_is_a_clear_error(model_dir, tmp_path):
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((400, 32)).astype(np.float32)
    from host.ralm.datastore import _write
    tmp_path.mkdir(exist_ok=True)
    rng.integers(0, VOCAB, 400).astype("<i8").tofile(tmp_path / "values.i64")
    _write(tmp_path, keys, DatastoreConfig(BuildConfig(nlist=8, m=8), shards=2), {"kind": "knn"})

    async def run():
        async with cluster(model_dir, tmp_path) as (ds, coord, llm, _):
            with pytest.raises(InputError, match="hidden size is 64.*dim 32"):
                await RalmCoordinator(llm, knn=coord, knn_values=ds.values).check()
    asyncio.run(run())


def test_unknown_or_wrong_datastore(tmp_path, chunk_store):
    with pytest.raises(IndexFormatError, match="no datastore.json"):
        load_datastore(tmp_path / "nope")
    (tmp_path / "datastore.json").write_text('{"kind": "poems"}')
    (tmp_path / "index").mkdir()
    with pytest.raises(IndexFormatError):
        load_datastore(tmp_path)
    with pytest.raises(InputError, match="no kNN datastore"):
        asyncio.run(RalmCoordinator(llm=None).generate_knn([1, 2]))


def test_memory_node_death_fails_or_falls_back(model_dir, knn_store):
    store, motifs = knn_store

    async def run(fallback):
        async with cluster(model_dir, store) as (ds, coord, llm, nodes):
            ralm = RalmCoordinator(llm, RalmConfig(nprobe=NPROBE, k=K, fallback=fallback), knn=coord,
                                   knn_values=ds.values)
            await nodes[1].close()
            res = await ralm.generate_knn(motifs[0][:6].tolist(), max_tokens=5, ignore_eos=True)
            info = await llm.info()                              # the LLM node goes on
            more = [i async for i in llm.generate([1, 2, 3], max_tokens=3, temperature=0.0, ignore_eos=True)]
            return res, info, more
    with pytest.raises(RalmError, match="kNN retrieval failed.*memory node"):
        asyncio.run(run(False))
    res, info, more = asyncio.run(run(True))
    assert len(res.token_ids) == 5 and "LM alone" in res.fallback
    assert info["running"] == 0 and more[-1]["finish_reason"] == "length"


def test_type1_memory_node_death_is_a_clear_error(model_dir, chunk_store, hash_embedder):
    store, chunks = chunk_store

    async def run():
        async with cluster(model_dir, store) as (ds, coord, llm, nodes):
            ralm = RalmCoordinator(llm, RalmConfig(nprobe=NPROBE, k=K, interval=4, chunk_tokens=30), chunks=coord,
                                   chunk_texts=[c["text"] for c in ds.chunks], embedder=hash_embedder,
                                   tokenizer=CharTokenizer())
            await nodes[0].close()
            with pytest.raises(RalmError, match="chunk retrieval failed"):
                await ralm.generate_chunks("w1 w2 w3", max_tokens=8, ignore_eos=True)
            ralm.config.fallback = True
            res = await ralm.generate_chunks("w1 w2 w3", max_tokens=8, ignore_eos=True)
            assert len(res.token_ids) == 8 and not res.retrieved and "without retrieval" in res.fallback
    asyncio.run(run())


def test_step_mode_rejects_bad_mix_messages(model_dir, knn_store):
    from host.net.frames import RemoteError

    async def run():
        async with cluster(model_dir, knn_store[0]) as (ds, coord, llm, _):
            with pytest.raises(RemoteError, match="no step-mode request"):
                await llm.mix(12345, 0, [1], [1.0], 0.5)
            stream = llm.generate([1, 2, 3], max_tokens=3, temperature=0.0, ignore_eos=True, step_mode=True)
            item = await stream.__anext__()
            assert item["step"] == 0 and item["hidden"].shape == (64,)
            with pytest.raises(RemoteError, match="not waiting for step 5"):
                await llm.mix(item["seq"], 5, [1], [1.0], 0.5)
            with pytest.raises(RemoteError, match="sum to at most 1"):
                await llm.mix(item["seq"], 0, [1, 2], [0.9, 0.9], 0.5)
            with pytest.raises(RemoteError, match=r"mix tokens must be in \[0, 120\)"):
                await llm.mix(item["seq"], 0, [500], [1.0], 0.5)
            await llm.mix(item["seq"], 0, [7], [1.0], 1.0)           # lam = 1: the mixed-in distribution decides
            tokens = []
            async for i in stream:
                if "step" in i:
                    await llm.mix(i["seq"], i["step"], [7, 9], [0.25, 0.75], 1.0)
                elif "token" in i:
                    tokens.append(i["token"])
                else:
                    assert i["finish_reason"] == "length"
            assert tokens == [7, 9, 9]
    asyncio.run(run())
