"""A local Ray cluster of two simulated hosts for the `cluster` tests, started once per pytest worker."""
import logging
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
HOSTS = {"fpga": {"alveo_u250": 2}, "cpu": {"cpu_host": 2}}
"""The custom resources each simulated host advertises (as `ray start --resources` would)."""


@pytest.fixture(scope="session")
def ray_cluster():
    """(Cluster, {host: node id}): two nodes with 2 logical CPUs each and a small object store; the
    workers import this checkout."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), old) if p)
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=2, resources=HOSTS["fpga"], include_dashboard=False, object_store_memory=80 << 20))
    try:
        cluster.add_node(num_cpus=2, resources=HOSTS["cpu"], object_store_memory=80 << 20)
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False)
        nodes = {host: next(n["NodeID"] for n in ray.nodes() if n["Alive"] and res.keys() <= n["Resources"].keys())
                 for host, res in HOSTS.items()}
        yield cluster, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
