"""Memory nodes on other hosts: each node in its own network namespace, reached over a veth pair."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.index.index_dir import export_index, load_index
from host.serve.coordinator import remote_search
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.timeout(90)
ROOT = Path(__file__).resolve().parents[2]


def _ip(*args, ns: str | None = None) -> None:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


@pytest.fixture
def namespaces():
    """Two namespaces, each with one veth end at 10.<a>.<i>.2 and the other end here at 10.<a>.<i>.1."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2 (`ip`)")
    tag, a = os.getpid() % 10_000, 100 + os.getpid() % 100
    made = []
    try:
        for i in range(2):
            ns, host_if, ns_if = f"anole{tag}n{i}", f"av{tag}h{i}", f"av{tag}n{i}"
            _ip("netns", "add", ns)
            made.append((ns, host_if))
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            _ip("link", "set", ns_if, "netns", ns)
            _ip("addr", "add", f"10.{a}.{i}.1/30", "dev", host_if)
            _ip("link", "set", host_if, "up")
            _ip("addr", "add", f"10.{a}.{i}.2/30", "dev", ns_if, ns=ns)
            _ip("link", "set", ns_if, "up", ns=ns)
            _ip("link", "set", "lo", "up", ns=ns)
    except (subprocess.SubprocessError, OSError) as e:
        _cleanup(made)
        pytest.skip(f"cannot make network namespaces here: {getattr(e, 'stderr', b'') or e!r}")
    yield [(ns, f"10.{a}.{i}.2") for i, (ns, _) in enumerate(made)]
    _cleanup(made)


def _cleanup(made):
    for ns, host_if in made:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_nodes_in_their_own_namespaces(namespaces, small_faiss, small_data, tmp_path):
    index = load_index(export_index(small_faiss, tmp_path / "idx", nshards=2))
    queries = small_data[1][:30]
    params = ScanParams(m=index.m)
    want = LocalSearcher(index, params, backend="reference").search(queries, 8)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs, addrs = [], []
    try:
        for shard, (ns, ip) in enumerate(namespaces):
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-m", "host.cli", "serve", "memory-node", "--index",
                 str(index.path), "--shard", str(shard), "--host", ip, "--port", "0", "--backend", "reference"],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            line = procs[-1].stdout.readline()
            assert f"listening on {ip}:" in line, line
            addrs.append(line.split()[-1])
        got = remote_search(addrs, load_index(index.path, shards=[]), queries, 8, params)
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dist, want.dist)
    finally:
        for p in procs:
            p.kill()
            p.wait()
