"""`anole cluster up|status|down` on a local Ray cluster of two simulated hosts with different resources."""
import asyncio
import json
import socket
import time

import numpy as np
import pytest
import yaml

from host.backends.local_search import LocalSearcher
from host.cli import main
from host.cluster.deploy import down, up
from host.cluster.ray_env import REGISTRY
from host.cluster.topology import parse_topology
from host.index.index_dir import export_index, load_index
from host.net.client import RpcClient
from host.net.frames import RpcError
from host.ralm.cluster import ClusterError, LocalCluster
from host.serve import wire
from host.spec.scan_params import ScanParams

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
NPROBE = 8


@pytest.fixture(scope="module")
def index_path(small_faiss, tmp_path_factory):
    return export_index(small_faiss, tmp_path_factory.mktemp("cluster") / "idx", nshards=2)


def _topology(index, namespace, **extra):
    return {"index": str(index), "namespace": namespace, "bind": "127.0.0.1", "wait_s": 30,
            "memory_node": {"backend": "reference", "num_cpus": 0.5, "resources": {"alveo_u250": 1}},
            "shards": 2, "coordinators": [{"name": "coordinator", "num_cpus": 0.5, "resources": {"cpu_host": 1}}],
            **extra}


def _search(address, queries, k=10):
    return wire.parse_search_response(asyncio.run(_call(address, wire.T_SEARCH,
                                                        wire.search_request(queries, NPROBE, k))))


def _search_retrying(address, queries, attempts=20):
    """The first search after a memory node restarted may meet the coordinator's stale connection."""
    for _ in range(attempts):
        try:
            return _search(address, queries)
        except (RpcError, OSError):
            time.sleep(0.5)
    return _search(address, queries)


def _running(pid, port, wait_s=60.0):
    """What of the server is left after ``wait_s``: '' when its process is gone and its port is closed."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                left = "process" if f.read().rsplit(")", 1)[1].split()[0] != "Z" else ""
        except FileNotFoundError:
            left = ""
        with socket.socket() as s:
            left += " port" if s.connect_ex(("127.0.0.1", port)) == 0 else ""
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _wait_for_start(capsys, name, starts, wait_s=60.0):
    """The status record of ``name`` once it is alive after its ``starts``-th start."""
    deadline = time.monotonic() + wait_s
    while True:
        assert main(["cluster", "status", "--namespace", "t-life", "--json"]) in (0, 1)
        rec = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == name)
        if (rec["alive"] and rec.get("starts") == starts) or time.monotonic() > deadline:
            assert rec["alive"] and rec["starts"] == starts, rec
            return rec
        time.sleep(0.5)


async def _call(address, msg_type, fields=None):
    host, port = address.rsplit(":", 1)
    client = await RpcClient.connect(host, int(port))
    try:
        return await client.call(msg_type, fields or {})
    finally:
        await client.close()


def test_up_search_restart_status_down(ray_cluster, index_path, small_data, tmp_path, capsys):
    import ray

    _, nodes = ray_cluster
    (tmp_path / "topo.yaml").write_text(yaml.safe_dump(_topology(index_path, "t-life")))
    assert main(["cluster", "up", str(tmp_path / "topo.yaml"), "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert sorted(records) == ["coordinator", "memory-node-0-0", "memory-node-1-0"]
    assert {records[f"memory-node-{s}-0"]["node_id"] for s in (0, 1)} == {nodes["fpga"]}   # placed by resource
    assert records["coordinator"]["node_id"] == nodes["cpu"]

    index = load_index(index_path)
    queries = small_data[1][:40]
    want = LocalSearcher(index, ScanParams(m=index.m), backend="reference").search(queries, NPROBE)
    coord = records["coordinator"]["address"]
    got = _search(coord, queries)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)

    victim = records["memory-node-1-0"]
    ray.kill(ray.get_actor("memory-node-1-0", namespace="t-life"), no_restart=False)   # the process dies
    back = _wait_for_start(capsys, "memory-node-1-0", 2)
    assert back["pid"] != victim["pid"] and back["address"] == victim["address"]
    got = _search_retrying(coord, queries)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)

    # shard 1's node moves (here: to a server started by hand): once it registers its new address, the
    # registry restarts the coordinator, which reads the addresses again when it starts
    with LocalCluster(tmp_path / "logs") as hand:
        moved = hand.start("shard 1", ["serve", "memory-node", "--index", str(index_path), "--shard", "1",
                                       "--port", "0", "--backend", "reference"])
        reg = ray.get_actor(REGISTRY, namespace="t-life")
        ray.get(reg.register.remote("memory-node-1-0", "memory-node", dict(back, address=moved)))
        assert _wait_for_start(capsys, "coordinator", 2)["address"] == coord       # back on its port
        assert moved in asyncio.run(_call(coord, wire.T_INFO))["nodes"]
        got = _search_retrying(coord, queries)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dist, want.dist)

    assert main(["cluster", "status", "--namespace", "t-life", "--json"]) == 0
    now = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert main(["cluster", "down", "--namespace", "t-life"]) == 0
    assert "stopped 4 actor(s)" in capsys.readouterr().out
    for r in now.values():
        assert _running(r["pid"], int(r["address"].rsplit(":", 1)[1])) == "", r
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "t-life"]
    assert main(["cluster", "status", "--namespace", "t-life"]) == 2


@pytest.mark.timeout(120)          # a hang guard: up() must give up after wait_s, not wait for a host forever
def test_missing_resource_fails_after_a_bounded_wait(ray_cluster, index_path):
    import ray

    topo = _topology(index_path, "t-missing", wait_s=1.0,
                     memory_node={"backend": "reference", "resources": {"alveo_u280": 1}})
    with pytest.raises(ClusterError, match=r"memory-node-0-0 asks for alveo_u280: 1.*hosts offer .*alveo_u250"):
        up(parse_topology(topo))
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "t-missing"]


@pytest.mark.parametrize("change,message", [
    ({"index": "/nonexistent/idx"}, r"memory-node-0-0 did not start: IndexFormatError: .*no manifest.json"),
    ({"shards": 1}, r"has 2 shards, the topology 1: shard\(s\) \[1\] have no memory node"),
])
def test_bad_deployment_is_reported_and_cleaned_up(ray_cluster, index_path, change, message):
    import ray

    with pytest.raises(ClusterError, match=message):
        up(parse_topology(_topology(index_path, "t-bad") | change))
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "t-bad"]
    assert down("t-bad") == []


@pytest.mark.sweep        # torch in a fresh actor process: too slow for `make test` on 2 cores
def test_llm_node_actor_scores_like_transformers(ray_cluster, index_path, tmp_path):
    import ray
    import torch
    transformers = pytest.importorskip("transformers")

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=120, n_positions=128,
                                  bos_token_id=0, eos_token_id=0)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    model.save_pretrained(tmp_path / "gpt2")
    topo = _topology(index_path, "t-llm", llm_nodes=[{"name": "llm0", "model": str(tmp_path / "gpt2"), "kv_blocks": 64,
                                                      "num_cpus": 0.5, "resources": {"cpu_host": 1}}])
    try:
        records = {r["name"]: r for r in up(parse_topology(topo))}
        assert records["llm0"]["node_id"] == ray_cluster[1]["cpu"]
        ids = np.array([5, 17, 3, 99, 42, 7], np.int64)
        got = asyncio.run(_call(records["llm0"]["address"], 33, {"token_ids": ids}))["logprobs"]   # T_SCORE
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.from_numpy(ids)[None]).logits[0, :-1].float(), -1)
        np.testing.assert_allclose(got, logp[torch.arange(len(ids) - 1), torch.from_numpy(ids[1:])].numpy(),
                                   rtol=1e-4, atol=1e-4)
    finally:
        down("t-llm")
    assert not [a for a in ray.util.list_named_actors(all_namespaces=True) if a["namespace"] == "t-llm"]


def test_every_replica_reaches_the_coordinator_which_fails_over(ray_cluster, index_path, small_data, capsys):
    import ray

    topo = _topology(index_path, "t-rep", shards={0: {"replicas": 2}, 1: {"resources": {"cpu_host": 1}}})
    try:
        records = {r["name"]: r for r in up(parse_topology(topo))}
        coord, r00, r01, r10 = (records[n]["address"] for n in ("coordinator", "memory-node-0-0", "memory-node-0-1",
                                                                  "memory-node-1-0"))
        assert asyncio.run(_call(coord, wire.T_INFO))["topology"] == f"0={r00}|{r01},1={r10}"
        assert main(["cluster", "status", "--namespace", "t-rep", "--json"]) == 0
        assert {r["name"] for r in json.loads(capsys.readouterr().out) if r["alive"]} == set(records)

        index = load_index(index_path)
        queries = small_data[1][:20]
        want = LocalSearcher(index, ScanParams(m=index.m), backend="reference").search(queries, NPROBE)
        for i in range(4):                                  # one query per request: the replicas take turns
            got = _search(coord, queries[i:i + 1])
            np.testing.assert_array_equal(got.ids, want.ids[i:i + 1])
        assert all(asyncio.run(_call(a, wire.T_STATS))["requests"] >= 1 for a in (r00, r01))

        ray.kill(ray.get_actor("memory-node-0-0", namespace="t-rep"), no_restart=True)
        for _ in range(2):                # no retry here: the coordinator itself fails over to memory-node-0-1
            got = _search(coord, queries)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.dist, want.dist)
        assert main(["cluster", "status", "--namespace", "t-rep", "--json"]) == 1
        alive = {r["name"]: r["alive"] for r in json.loads(capsys.readouterr().out)}
        assert alive == {"memory-node-0-0": False, "memory-node-0-1": True, "memory-node-1-0": True,
                         "coordinator": True}
    finally:
        down("t-rep")
