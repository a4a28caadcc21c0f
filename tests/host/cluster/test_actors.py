"""The API front door as an actor of `anole cluster up`: wired to the discovered LLM node and to every replica
of the memory nodes serving its kNN datastore; its greedy completion equals the LLM node's own."""
import asyncio
import json
import urllib.request

import numpy as np
import pytest

from host.cluster.deploy import down, up
from host.cluster.topology import parse_topology
from host.index.builder import BuildConfig
from host.ralm.datastore import DatastoreConfig, build_knn_datastore
from llm_node.client import LLMClient
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.tokenizer import Tokenizer

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
PROMPT = "def decode(self, s):\n    "


@pytest.fixture(scope="module")
def knn_store(tokenized_gpt2, tmp_path_factory):
    """A small kNN datastore of the tiny GPT-2 over a random token stream, 2 shards."""
    stream = np.random.default_rng(0).integers(1, 250, 600).tolist()
    out = tmp_path_factory.mktemp("cluster_knn")
    engine = LLMEngine(EngineConfig(tokenized_gpt2, block_size=4, num_kv_blocks=64))
    build_knn_datastore(engine, stream, out, DatastoreConfig(BuildConfig(nlist=8, m=8, threads=1), shards=2),
                        window=64)
    return out


def _get(url, body=None):
    req = urllib.request.Request(url, body and json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


async def _node_greedy(address, tok, n):
    """The LLM node's own greedy text for PROMPT, without its end-of-sequence token."""
    host, port = address.rsplit(":", 1)
    llm = await LLMClient.connect(host, int(port))
    try:
        items = [i async for i in llm.generate(tok.encode(PROMPT), max_tokens=n, temperature=0.0)]
        eos_ids = (await llm.info())["eos_token_ids"].tolist()
    finally:
        await llm.close()
    ids = items[-1]["token_ids"].tolist()
    return tok.decode(ids[:-1] if ids and ids[-1] in eos_ids and items[-1]["finish_reason"] == "stop" else ids)


def test_api_actor_over_the_discovered_nodes(ray_cluster, knn_store, tokenized_gpt2):
    import ray

    cpu = {"num_cpus": 0.25}
    topo = {"index": str(knn_store / "index"), "namespace": "t-api", "bind": "127.0.0.1", "wait_s": 60,
            "memory_node": {"backend": "reference", **cpu}, "shards": {0: {"replicas": 2}, 1: {}},
            "coordinators": [{"name": "coordinator", **cpu}],
            "llm_nodes": [{"name": "llm0", "model": str(tokenized_gpt2), "kv_blocks": 64, **cpu}],
            "api": {"knn": str(knn_store), "retrieval": "none", "served_model_name": "tiny", **cpu}}
    try:
        records = {r["name"]: r for r in up(parse_topology(topo))}
        base = f"http://{records['api']['address']}"
        assert _get(base + "/health") == {"status": "ok"}
        ready = _get(base + "/ready")
        nodes = sorted(records[n]["address"] for n in ("memory-node-0-0", "memory-node-0-1", "memory-node-1-0"))
        assert ready["ready"] and ready["checks"]["llm_node"]
        assert sorted(c.removeprefix("knn memory node ") for c in ready["checks"] if c.startswith("knn ")) == nodes

        want = asyncio.run(_node_greedy(records["llm0"]["address"], Tokenizer(tokenized_gpt2), 12))
        got = _get(base + "/v1/completions", {"model": "tiny", "prompt": PROMPT, "max_tokens": 12, "temperature": 0})
        assert want and got["choices"][0]["text"] == want
    finally:
        down("t-api")
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "t-api"]
