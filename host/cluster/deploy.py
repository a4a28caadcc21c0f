"""`anole cluster up|status|down`: a topology's servers as detached Ray actors, found again by name."""
from __future__ import annotations

import logging
import time

from host.cluster.actors import Registry, ServerActor
from host.cluster.ray_env import REGISTRY, connect, wait_for_resources
from host.cluster.topology import ROLES, Topology
from host.ralm.cluster import ClusterError

log = logging.getLogger(__name__)


def up(topology: Topology, address: str | None = "auto") -> list[dict]:
    """Start every server of ``topology``: memory nodes, LLM nodes, coordinators, the API (each reads the
    addresses of those it uses from the registry). On any failure what was started is taken down again."""
    ray = connect(address)
    ns = topology.namespace
    if _handle(ray, REGISTRY, ns) is not None:
        raise ClusterError(f"namespace {ns!r} already holds a deployment; `anole cluster down` it first")
    wait_for_resources(ray, {name: spec.placement.demand() for name, _, spec in topology.servers()},
                       topology.wait_s)
    ray.remote(Registry).options(name=REGISTRY, namespace=ns, lifetime="detached", num_cpus=0).remote(topology)
    try:
        for role in ROLES:
            _start(ray, topology, [s for s in topology.servers() if s[1] == role])
            if role == "memory-node":
                _check_shards(ray, topology)
        return status(ns, address)
    except BaseException:
        down(ns, address)
        raise


def _start(ray, topology: Topology, stage: list) -> None:
    actor = ray.remote(ServerActor)
    handles = []
    for name, role, spec in stage:
        p = spec.placement
        handles.append((name, actor.options(
            name=name, namespace=topology.namespace, lifetime="detached", max_restarts=topology.max_restarts,
            num_cpus=p.num_cpus, num_gpus=p.num_gpus, resources=dict(p.resources)).remote(name, role, spec, topology)))
    for name, h in handles:
        try:
            rec = ray.get(h.ready.remote(), timeout=topology.wait_s)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"{name} was not placed and ready in {topology.wait_s:g} s (hosts busy?)") from None
        except ray.exceptions.RayActorError as e:
            raise ClusterError(f"{name} died while starting: {str(e).strip().splitlines()[0]}") from None
        if rec.get("error"):
            raise ClusterError(f"{name} did not start: {rec['error']}")
        log.info("%s listening on %s (pid %d on %s)", name, rec["address"], rec["pid"], rec["node_ip"])


def _check_shards(ray, topology: Topology) -> None:
    """Every shard of the index needs a memory node; the topology may not name more shards than it has."""
    h = _handle(ray, topology.shards[0].name(0), topology.namespace)
    nshards = ray.get(h.index_shards.remote(), timeout=30)
    if nshards != len(topology.shards):
        raise ClusterError(f"the index {topology.index} has {nshards} shards, the topology {len(topology.shards)}: "
                           f"shard(s) {list(range(len(topology.shards), nshards)) or 'beyond the index'} "
                           f"{'have no memory node' if nshards > len(topology.shards) else 'do not exist'}")


def status(namespace: str = "anole", address: str | None = "auto", timeout_s: float = 5.0) -> list[dict]:
    """One record per server of the deployment in ``namespace``: address, pid, host, starts, alive."""
    ray = connect(address)
    reg = _handle(ray, REGISTRY, namespace)
    if reg is None:
        raise ClusterError(f"no deployment in namespace {namespace!r} (`anole cluster up` starts one)")
    known = ray.get(reg.records.remote(), timeout=timeout_s)
    topo = ray.get(reg.topology_of.remote(), timeout=timeout_s)
    out = []
    for name, role, _ in topo.servers():
        rec = dict(known.get(name) or {"name": name, "role": role}, alive=False)
        h = _handle(ray, name, namespace)
        if h is not None:
            try:
                now = ray.get(h.ready.remote(), timeout=timeout_s)
                rec.update(now, alive=not now.get("error"))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                rec["error"] = type(e).__name__
        out.append(rec)
    return out


def down(namespace: str = "anole", address: str | None = "auto", timeout_s: float = 30.0) -> list[str]:
    """Kill every named actor of ``namespace`` (servers and registry) and wait until each has exited."""
    ray = connect(address)
    names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                   if a["namespace"] == namespace)
    handles = [(n, h) for n in names if (h := _handle(ray, n, namespace)) is not None]
    for _, h in handles:
        ray.kill(h, no_restart=True)
    deadline = time.monotonic() + timeout_s
    for name, _ in handles:
        while time.monotonic() < deadline and _handle(ray, name, namespace) is not None:
            time.sleep(0.1)
    left = [n for n, _ in handles if _handle(ray, n, namespace) is not None]
    if left:
        raise ClusterError(f"still running {timeout_s:g} s after `down`: {left}")
    return names


def _handle(ray, name: str, namespace: str):
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None
