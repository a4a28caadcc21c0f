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
])
def test_bad_topology_names_the_mistake(change, message):
    with pytest.raises(InputError, match=message):
        parse_topology(BASE | change)


def test_relative_index_is_taken_from_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "t.yaml").write_text("index: build/idx\nshards: 2\n")
    monkeypatch.chdir(tmp_path)
    assert load_topology("t.yaml").index == str(tmp_path / "build" / "idx")


def test_cli_rejects_a_bad_topology_file(tmp_path, capsys):
    (tmp_path / "t.yaml").write_text("index: [unclosed\n")
    assert main(["cluster", "up", str(tmp_path / "t.yaml")]) == 2
    assert main(["cluster", "up", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "cannot read topology" in err and "missing.yaml" in err and "Traceback" not in err
