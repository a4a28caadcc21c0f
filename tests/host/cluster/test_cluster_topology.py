"""Topology files of `anole cluster up`: defaults, per-shard overrides, and one clear error per mistake."""
import pytest

from host.cli import main
from host.cluster.topology import load_topology, parse_topology
from host.spec.errors import InputError

BASE = {"index": "/data/idx", "memory_node": {"backend": "cpu", "k": 10, "num_cpus": 2}}


def test_shard_count_and_overrides():
    topo = parse_topology(BASE | {"shards": {0: {"backend": "xrt", "resources": {"alveo_u250": 1}, "replicas": 2},
                                             1: None}})
    s0, s1 = topo.shards
    assert (s0.backend, s0.k, s0.replicas, s0.placement.demand()) == ("xrt", 10, 2, {"CPU": 2.0, "alveo_u250": 1.0})
    assert (s1.backend, s1.replicas, s1.placement.demand()) == ("cpu", 1, {"CPU": 2.0})
    assert [n for n, _, _ in topo.servers()] == ["memory-node-0-0", "memory-node-0-1", "memory-node-1-0",
                                                 "coordinator"]
    assert [s.shard for s in parse_topology(BASE | {"shards": 3}).shards] == [0, 1, 2]


def test_llm_nodes_take_gpus():
    topo = parse_topology(BASE | {"shards": 1, "llm_nodes": [{"name": "llm0", "model": "m", "device": "cuda",
                                                              "num_gpus": 1, "scheduler": "fcfs"}]})
    assert topo.llm_nodes[0].placement.demand() == {"CPU": 1.0, "GPU": 1.0}
    assert [r for _, r, _ in topo.servers()] == ["memory-node", "llm-node", "coordinator"]


@pytest.mark.parametrize("change,message", [
    ({"shards": {0: {}, 2: {}}}, r"shard\(s\) \[1\] have no memory node"),
    ({"shards": None}, "`shards` must be a count or a mapping"),
    ({"shards": {"a": {}}}, "shard keys must be integers"),
    ({"shards": 1, "memory_node": {"colour": "red"}}, r"unknown key\(s\) \['colour'\] for MemoryNodeSpec"),
    ({"shards": 1, "num_cpus": 4}, r"unknown key\(s\) \['num_cpus'\] for Topology"),
    ({"shards": 1, "memory_node": {"resources": {"alveo_u250": 0}}}, "positive amounts"),
    ({"shards": 1, "memory_node": {"replicas": 0}}, "replicas=0"),
    ({"shards": 1, "coordinators": [{"name": "x"}], "llm_nodes": [{"name": "x", "model": "m"}]}, "distinct"),
    ({"shards": 1, "llm_nodes": [{"name": "memory-node-0-0", "model": "m"}]}, "distinct"),
    ({"shards": 1, "wait_s": 0}, "wait_s must be > 0"),
    ({"shards": 1, "api": {}}, "the API needs an LLM node"),
    ({"shards": 1, "api": {"llm_node": "llm9"}, "llm_nodes": [{"name": "llm0", "model": "m"}]},
     r"llm_node 'llm9' is not among the LLM nodes \['llm0'\]"),
    ({"shards": 1, "api": {"knn": "/data/knn"}, "llm_nodes": [{"name": "llm0", "model": "m"}]},
     "searches /data/knn/index, the memory nodes serve /data/idx"),
    ({"shards": 1, "api": {"knn": "/a", "chunks": "/b"}}, "`knn` or `chunks`, not both"),
])
def test_bad_topology_names_the_mistake(change, message):
    with pytest.raises(InputError, match=message):
        parse_topology(BASE | change)


def test_api_comes_last_with_the_first_llm_node_and_its_model():
    llms = [{"name": "llm0", "model": "/m0"}, {"name": "llm1", "model": "/m1"}]
    topo = parse_topology(BASE | {"shards": 2, "llm_nodes": llms, "api": {"port": 8000, "k": 4}})
    assert [r for _, r, _ in topo.servers()][-3:] == ["llm-node", "coordinator", "api"]
    assert (topo.api.llm_node, topo.api.model, topo.api.ralm_options()) == ("llm0", "/m0", {"k": 4})
    assert parse_topology(BASE | {"shards": 1, "llm_nodes": llms, "api": {"llm_node": "llm1"}}).api.model == "/m1"


def test_relative_index_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "t.yaml").write_text("index: build/knn/index\nshards: 2\nllm_nodes: [{name: l, model: m}]\n"
                                     "api: {knn: build/knn}\n")
    monkeypatch.chdir(tmp_path)
    topo = load_topology("t.yaml")
    assert (topo.index, topo.api.knn) == (str(tmp_path / "build" / "knn" / "index"), str(tmp_path / "build" / "knn"))


def test_cli_rejects_a_bad_topology_file(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text("index: [unclosed\n")
    assert main(["cluster", "up", str(tmp_path / "t.yaml")]) == 2
    assert main(["cluster", "up", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read topology" in err and "missing.yaml" in err and "Traceback" not in err
