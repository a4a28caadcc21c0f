"""Resource checks before waiting on Ray, and a cluster address nothing listens at."""
import socket

import pytest

from host.cluster.ray_env import _probe, shortfall
from host.ralm.cluster import ClusterError

HOSTS = [{"CPU": 16.0, "alveo_u250": 2.0}, {"CPU": 32.0, "GPU": 4.0}]


@pytest.mark.parametrize("demand,missing", [
    ({"CPU": 1.0, "alveo_u250": 1.0}, None),
    ({"CPU": 1.0, "GPU": 4.0}, None),
    ({"alveo_u280": 1.0}, "alveo_u280: 1"),
    ({"alveo_u250": 3.0}, "alveo_u250: 3"),
    ({"GPU": 1.0, "alveo_u250": 1.0}, "all of"),      # each exists, but on no single host together
])
def test_shortfall_names_what_no_host_offers(demand, missing):
    got = shortfall(demand, HOSTS)
    assert got is None if missing is None else missing in got


def test_nothing_listening_fails_at_once():
    ray = pytest.importorskip("ray")
    with socket.socket() as s:       # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match=f"no Ray cluster at '127.0.0.1:{port}'.*ray start --head"):
        _probe(ray, f"127.0.0.1:{port}")
