"""host.serve.topology: replicas per shard from the command line or YAML; bad topologies get clear errors."""
import pytest

from host.serve.topology import Topology, parse_topology
from host.spec.errors import InputError


def test_forms_agree(tmp_path):
    cli = parse_topology("0=a:1|b:2, 1=c:3|d:4")
    path = tmp_path / "t.yaml"
    path.write_text("shards:\n  0: [a:1, b:2]\n  1: [c:3, d:4]\n")
    assert parse_topology(str(path)) == cli == Topology({0: ["a:1", "b:2"], 1: ["c:3", "d:4"]})
    assert cli.addresses == ["a:1", "b:2", "c:3", "d:4"] and str(cli) == "0=a:1|b:2,1=c:3|d:4"
    old = parse_topology(["h:1", "h:2"])
    assert not old.declared and old.addresses == ["h:1", "h:2"] and parse_topology("h:1,h:2") == old
    cli.check_index(2, "idx")


@pytest.mark.parametrize("spec, match", [
    ("0=a:1|b:2,1=a:1", "a:1 is listed twice"),
    ("a:1,a:1", "a:1 is listed twice"),
    ("0=,1=c:3", "shard 0 has no replica"),
    ("0=a:1,0=b:1", "shard 0 is given twice"),
    ("x=a:1", "bad topology entry"),
    ("a:1|b:2", "replicas need shard ids"),
    ("0=a:99999", "bad address"),
    ("", "names no memory node"),
])
def test_bad_topologies(spec, match):
    with pytest.raises(InputError, match=match):
        parse_topology(spec)


def test_topology_against_the_index(tmp_path):
    with pytest.raises(InputError, match=r"names shard\(s\) \[2\]; idx has shards 0..1"):
        parse_topology("0=a:1,1=b:1,2=c:1").check_index(2, "idx")
    with pytest.raises(InputError, match=r"no memory node serves shard\(s\) \[1\]"):
        parse_topology("0=a:1").check_index(2, "idx")
    bad = tmp_path / "bad.yaml"
    for text, match in [("nodes: []\n", "one key 'shards'"), ("shards:\n  0: a:1\n", "must list its replicas"),
                        ("shards: [\n", "cannot read"), ("shards:\n  -1: [a:1]\n", "integers >= 0")]:
        bad.write_text(text)
        with pytest.raises(InputError, match=match):
            parse_topology(str(bad))
