"""Ray as anole uses it: import on demand (an optional extra), connect, and check that hosts offer what a
server asks for before waiting on it."""
from __future__ import annotations

import logging
import os
import socket
import time

from host.ralm.cluster import ClusterError

log = logging.getLogger(__name__)

REGISTRY = "anole-registry"
"""Name of the detached actor that records a deployment's topology and discovered addresses."""


def require_ray():
    """The ``ray`` module, or a ClusterError saying how to install it."""
    try:
        import ray  # lazy: the optional `cluster` extra; board-side installs leave it out
    except ImportError:
        raise ClusterError("anole cluster needs Ray: pip install 'anole[cluster]'") from None
    return ray


def connect(address: str | None):
    """Connect this process to the Ray cluster at ``address`` ('auto', 'HOST:PORT' or 'ray://HOST:PORT');
    a process already connected (a test, a script) keeps its connection."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    address = address or "auto"
    _probe(ray, address)
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        auth = "" if os.environ.get("RAY_AUTH_MODE") == "token" else (
            "; a cluster from `ray start` checks a token by default: export RAY_AUTH_MODE=token here and give this "
            "host the cluster's ~/.ray/auth_token (docs/cluster.md)")
        raise ClusterError(f"cannot connect to the Ray cluster at {address!r} ({first}){auth}") from None
    return ray


START_HINT = "start one with `ray start --head` (docs/cluster.md) or pass --address"


def _probe(ray, address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when nothing listens at the cluster's address (ray.init would retry for minutes)."""
    if address == "auto":
        found = os.environ.get("RAY_ADDRESS") or ray._private.utils.read_ray_address()
        if not found:
            raise ClusterError(f"no Ray cluster found on this host (RAY_ADDRESS unset, no `ray start`); {START_HINT}")
        address = found
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"no Ray cluster at {address!r} ({e}); {START_HINT}") from None


def host_resources(ray) -> list[dict]:
    """The resources of every live node, as ``ray start --resources`` and Ray's own (CPU, GPU) name them."""
    return [dict(n["Resources"], _ip=n.get("NodeManagerAddress", "?")) for n in ray.nodes() if n.get("Alive")]


def shortfall(demand: dict[str, float], hosts: list[dict]) -> str | None:
    """None if one host offers all of ``demand``, else what no host offers, e.g. "alveo_u250: 1"."""
    if any(all(h.get(k, 0.0) >= v for k, v in demand.items()) for h in hosts):
        return None
    lacking = [f"{k}: {v:g}" for k, v in demand.items() if not any(h.get(k, 0.0) >= v for h in hosts)]
    return ", ".join(lacking) or f"all of {demand} on one host"


def wait_for_resources(ray, wanted: dict[str, dict[str, float]], wait_s: float, poll_s: float = 0.5) -> None:
    """Wait until every server (name -> demand) fits on some live host, at most ``wait_s`` seconds
    (hosts may still be joining); ClusterError names the server and the resource no host offers."""
    deadline = time.monotonic() + wait_s
    while True:
        hosts = host_resources(ray)
        missing = {name: s for name, d in wanted.items() if (s := shortfall(d, hosts))}
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    if missing:
        offered = sorted({k for h in hosts for k in h if not k.startswith(("_", "node:"))})
        lines = "; ".join(f"{name} asks for {s}" for name, s in missing.items())
        raise ClusterError(f"no host offers the resources asked after {wait_s:g} s: {lines} "
                           f"(hosts offer {', '.join(offered)}; advertise with `ray start --resources`)")
