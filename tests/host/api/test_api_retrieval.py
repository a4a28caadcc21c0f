"""Retrieval through the API (kNN-LM and chunks, each over two memory nodes) against in-process references;
/metrics scraped and parsed against the nodes' own counters; /health and /ready, also with a memory node gone."""
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from host.backends.local_search import LocalSearcher
from host.index.builder import BuildConfig
from host.net.client import SyncClient
from host.ralm.corpus import Chunk
from host.ralm.datastore import DatastoreConfig, build_chunk_datastore, build_knn_datastore, load_datastore
from host.serve import wire
from host.serve.memory_node import MemoryNode
from host.spec.scan_params import ScanParams
from llm_node.engine.sequence import SamplingParams
from llm_node.knn import interpolate, knn_log_probs

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.timeout(180)
K, NPROBE, LAM, TEMP = 8, 4, 0.9, 0.5
RETRIEVAL = {"type": "knn", "k": K, "nprobe": NPROBE, "lambda": LAM, "temperature": TEMP}


@pytest.fixture(scope="module")
def knn_store(tokenized_gpt2, api_tools, tmp_path_factory):
    """A kNN datastore over a repetitive random token stream (neighbours predict well), 2 shards; its motifs."""
    rng = np.random.default_rng(0)
    motifs = [rng.integers(1, 250, 12) for _ in range(20)]
    stream = np.concatenate([motifs[i] for i in rng.integers(0, 20, 150)]).tolist()
    out = tmp_path_factory.mktemp("api_knn")
    build_knn_datastore(api_tools[0](tokenized_gpt2), stream, out,
                        DatastoreConfig(BuildConfig(nlist=16, m=8, threads=1), shards=2), window=64)
    return out, motifs


@pytest.fixture(scope="module")
def chunk_store(tmp_path_factory, hash_embedder):
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(400)]
    chunks = [Chunk(f"doc{i}", " ".join(rng.choice(words, 20))) for i in range(300)]
    out = tmp_path_factory.mktemp("api_chunks")
    x = hash_embedder.encode([c.text for c in chunks])
    build_chunk_datastore(chunks, x, out, DatastoreConfig(BuildConfig(nlist=16, m=8, threads=1), shards=2))
    return out


@pytest.fixture(scope="module")
def rag_api(tokenized_gpt2, api_tools, knn_store, chunk_store, hash_embedder):
    """(serving tuple, the kNN memory nodes, their addresses, loop) with the kNN datastore as the default
    retrieval and the chunk datastore beside it."""
    import asyncio

    store = knn_store[0]
    nodes = [MemoryNode.open(store / "index", s, k=K) for s in range(2)]
    nodes += [MemoryNode.open(chunk_store / "index", s, k=K) for s in range(2)]
    loop = asyncio.new_event_loop()
    addrs = [loop.run_until_complete(n.start("127.0.0.1", 0)) for n in nodes]
    import threading
    threading.Thread(target=loop.run_forever, daemon=True).start()
    names = [f"{h}:{p}" for h, p in addrs]
    try:
        with api_tools[1](tokenized_gpt2, hash_embedder, knn=store, knn_nodes=names[:2], chunks=chunk_store,
                          chunk_nodes=names[2:]) as s:
            yield s, nodes[:2], names[:2], loop
    finally:
        for n in nodes:
            asyncio.run_coroutine_threadsafe(n.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def in_process_knn(engine, store, prompt, n):
    """The same kNN-LM in one process: LocalSearcher + knn_log_probs + interpolate as a logits processor."""
    ds = load_datastore(store)
    searcher = LocalSearcher(ds.index, ScanParams(m=ds.index.m, k=K))

    def knn(token_ids, logits, hidden):
        res = searcher.search(hidden.float().numpy()[None], NPROBE)
        lp = knn_log_probs(res.distances, ds.payload_of(res.ids), logits.shape[-1], TEMP)
        return interpolate(logits[None], lp, LAM)[0]
    seq, = engine.generate([prompt], SamplingParams(temperature=0, max_tokens=n, logits_processor=knn))
    return seq.completion_ids


def get(base: str, path: str):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(base: str) -> dict:
    """{(name, labels as sorted tuple): value} of every sample in /metrics."""
    status, text = get(base, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_knn_lm_through_the_api_equals_in_process(rag_api, tokenized_gpt2, api_tools, knn_store):
    (_, _, _, api, base), _, _, _ = rag_api
    store, motifs = knn_store
    prompt = motifs[3][:6].tolist()
    want = api.backend.decode(in_process_knn(api_tools[0](tokenized_gpt2), store, prompt, 10))
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
        r = c.completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0,
                                 extra_body={"retrieval": RETRIEVAL})
        default = c.completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0,
                                       extra_body={"retrieval": {"k": K, "nprobe": NPROBE, "lambda": LAM,
                                                                 "temperature": TEMP}})
        plain = c.completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0,
                                     extra_body={"retrieval": {"type": "none"}})
        streamed = c.completions.create(model="tiny", prompt=prompt, max_tokens=10, temperature=0, stream=True,
                                        extra_body={"retrieval": RETRIEVAL})
        streamed = "".join(ch.choices[0].text for ch in streamed)
    assert r.choices[0].text == want == default.choices[0].text == streamed
    assert plain.choices[0].text != want                      # retrieval changed the text


def test_chunks_through_the_api_equal_in_process(rag_api, tokenized_gpt2, api_tools, chunk_store, hash_embedder):
    """One retrieval interval: the chunk nearest to the prompt's words, put before the prompt, then greedy."""
    (_, _, _, api, base), _, _, _ = rag_api
    prompt = "w5 w17 w230 w42 w99 w7 w300 w12\n"
    ds = load_datastore(chunk_store)
    res = LocalSearcher(ds.index, ScanParams(m=ds.index.m, k=1)).search(hash_embedder.encode([prompt]), NPROBE)
    tok = api.backend.tokenizer
    ctx = tok.encode(ds.chunks[int(res.ids[0, 0])]["text"] + "\n\n")[:48]
    engine = api_tools[0](tokenized_gpt2)
    seq, = engine.generate([ctx + tok.encode(prompt)], SamplingParams(temperature=0, max_tokens=8))
    ids = seq.completion_ids[:-1] if seq.finish_reason == "stop" else seq.completion_ids
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
        r = c.completions.create(model="tiny", prompt=prompt, max_tokens=8, temperature=0,
                                 extra_body={"retrieval": {"type": "chunks", "interval": 8, "nprobe": NPROBE}})
    assert r.choices[0].text == tok.decode(ids)


def test_retrieve_endpoint_equals_a_local_search(rag_api, chunk_store, hash_embedder):
    (_, _, _, _, base), _, _, _ = rag_api
    queries = ["w5 w17 w230", "w1 w2 w3 w4"]
    ds = load_datastore(chunk_store)
    want = LocalSearcher(ds.index, ScanParams(m=ds.index.m, k=3)).search(hash_embedder.encode(queries), NPROBE)
    body = json.dumps({"query": queries, "k": 3, "nprobe": NPROBE}).encode()
    req = urllib.request.Request(base + "/v1/retrieve", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        got = json.loads(r.read())["data"]
    assert [[x["id"] for x in g["results"]] for g in got] == want.ids.tolist()
    assert got[0]["results"][0]["text"] == ds.chunks[int(want.ids[0, 0])]["text"]


def test_metrics_agree_with_the_nodes(rag_api):
    (_, _, llm_address, _, base), _, names, _ = rag_api
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
        before = scrape(base)
        c.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=6, temperature=0,
                             extra_body={"retrieval": RETRIEVAL})
        with pytest.raises(openai.NotFoundError):
            c.completions.create(model="other", prompt="x")
    m = scrape(base)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return m.get(key, 0.0) - before.get(key, 0.0)
    assert delta("anole_api_requests_total", endpoint="/v1/completions", outcome="ok") == 1
    assert delta("anole_api_requests_total", endpoint="/v1/completions", outcome="client_error") == 1
    assert delta("anole_api_time_to_first_token_seconds_count") == 1
    assert delta("anole_api_e2e_request_latency_seconds_count") == 1
    tokens = delta("anole_api_generation_tokens_total")
    assert 1 <= tokens <= 6 and delta("anole_api_time_between_tokens_seconds_count") == tokens - 1
    assert delta("anole_retrieval_stage_seconds_count", datastore="knn", stage="scan") == tokens
    for shard, name in enumerate(names):
        host, port = name.split(":")
        with SyncClient(host, int(port)) as node:
            stats = node.call(wire.T_STATS)
        labels = dict(datastore="knn", node=name, shard=str(shard))
        assert m[("anole_memory_node_requests_total", tuple(sorted(labels.items())))] == stats["requests"]
        assert m[("anole_memory_node_scan_seconds_count", tuple(sorted(labels.items())))] == stats["requests"]
        assert m[("anole_node_up", (("node", name), ("role", "memory-node")))] == 1
    assert m[("anole_llm_node_running_sequences", (("node", llm_address),))] == 0
    assert m[("anole_llm_node_kv_cache_usage_ratio", (("node", llm_address),))] == 0
    assert m[("anole_node_up", (("node", llm_address), ("role", "llm-node")))] == 1


def test_health_and_ready_with_a_memory_node_gone(rag_api):
    import asyncio

    (_, _, _, _, base), nodes, names, loop = rag_api
    status, body = get(base, "/ready")
    assert status == 200 and json.loads(body)["ready"] is True
    asyncio.run_coroutine_threadsafe(nodes[1].close(), loop).result(10)
    status, body = get(base, "/ready")
    checks = json.loads(body)["checks"]
    assert status == 503 and checks[f"knn memory node {names[1]}"] is False and checks["llm_node"] is True
    assert get(base, "/health")[0] == 200
    m = scrape(base)
    assert m[("anole_node_up", (("node", names[1]), ("role", "memory-node")))] == 0
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
        with pytest.raises(openai.InternalServerError):
            c.completions.create(model="tiny", prompt=[5, 6], max_tokens=3, extra_body={"retrieval": RETRIEVAL})
        ok = c.completions.create(model="tiny", prompt=[5, 6], max_tokens=3, extra_body={"retrieval": {"type": "none"}})
        assert ok.usage.completion_tokens >= 1
