"""The Ray actors of a deployment: one ``ServerActor`` per server and the ``Registry`` that records them.

A ServerActor runs the same function as `anole serve` (``run_memory_node``, ``run_coordinator``,
``run_llm_node``) in a thread of the actor's process and reports where it listens; clients then talk to
that address over TCP, never through Ray. If the server stops after it was ready the actor process exits,
so Ray restarts it (``max_restarts``) on a host that has its resources. A restarted server takes its
previous port again when it lands on the same host; when a memory node or an LLM node moves, the registry
restarts the servers that use it (coordinators, the API), which read the new addresses when they start.
"""
from __future__ import annotations

import logging
import os
import threading
import traceback
from pathlib import Path

from host.cluster.ray_env import REGISTRY
from host.cluster.topology import ApiSpec, CoordinatorSpec, LLMNodeSpec, MemoryNodeSpec, Topology
from host.index.index_dir import load_index
from host.serve.coordinator import CoordinatorConfig
from host.serve.coordinator_server import run_coordinator
from host.serve.memory_node import MemoryNodeConfig, run_memory_node

log = logging.getLogger(__name__)

USERS = {"memory-node": ("coordinator", "api"), "llm-node": ("api",)}
"""role -> the roles of the servers that connect to it (restarted when it moves)."""


class Registry:
    """Detached actor: the topology, every server's address, start count and process, for status and down."""

    def __init__(self, topology: Topology):
        self.topology = topology
        self.servers: dict[str, dict] = {}

    def topology_of(self) -> Topology:
        return self.topology

    def previous(self, name: str) -> dict | None:
        return self.servers.get(name)

    def register(self, name: str, role: str, record: dict) -> None:
        import ray  # lazy: only ever runs inside a Ray actor

        old = self.servers.get(name)
        starts = (old or {}).get("starts", 0) + 1
        self.servers[name] = dict(record, role=role, starts=starts)
        if old and old["address"] != record["address"]:
            for user, user_role, _ in self.topology.servers():   # they read the addresses when they start
                if user_role in USERS.get(role, ()) and user in self.servers:
                    ray.kill(ray.get_actor(user, namespace=self.topology.namespace), no_restart=False)

    def shard_addresses(self) -> list[str]:
        """Every registered replica of each shard, as the coordinator takes them: ``["0=h:p|h:p", "1=h:p"]``."""
        return [f"{s.shard}=" + "|".join(self.servers[s.name(r)]["address"] for r in range(s.replicas)
                                          if s.name(r) in self.servers) for s in self.topology.shards]

    def records(self) -> dict[str, dict]:
        return dict(self.servers)


class ServerActor:
    """Runs one anole server in a thread of this actor; ``ready()`` is its info or {"error": ...}."""

    def __init__(self, name: str, role: str, spec, topology: Topology):
        import ray  # lazy: only ever runs inside a Ray actor

        self.name, self.role, self.spec, self.topology = name, role, spec, topology
        self._ready = threading.Event()
        self.error: str | None = None
        self.address: str | None = None
        self.registry = ray.get_actor(REGISTRY, namespace=topology.namespace)
        self.node_ip = ray.util.get_node_ip_address()
        self.host = self.node_ip if topology.bind in ("0.0.0.0", "::", "") else topology.bind
        prev = ray.get(self.registry.previous.remote(name))
        port = spec.port
        if not port and prev and prev["address"].rpartition(":")[0] == self.host:
            port = int(prev["address"].rpartition(":")[2])       # a restart on the same host keeps its port
        try:
            target = self._target(port)
        except Exception as e:  # noqa: BLE001 - reported by ready()
            self.error = f"{type(e).__name__}: {e}"
            return
        threading.Thread(target=self._run, args=(target,), name=name, daemon=True).start()
        self._ready.wait()          # `up` gives up after wait_s and kills this actor
        if self.error is None:
            ray.get(self.registry.register.remote(name, role, self.record()))

    def ready(self) -> dict:
        return {"name": self.name, "error": self.error} if self.error else self.record()

    def index_shards(self) -> int:
        """Shards of the index as this host sees it."""
        return int(load_index(self.topology.index, shards=[], verify=False).manifest["nshards"])

    def record(self) -> dict:
        import ray  # lazy: only ever runs inside a Ray actor

        return {"name": self.name, "role": self.role, "address": self.address, "pid": os.getpid(),
                "node_ip": self.node_ip, "node_id": ray.get_runtime_context().get_node_id(),
                "alive": self._ready.is_set() and self.error is None}

    def _on_ready(self, host: str, port: int) -> None:
        self.address = f"{self.host}:{port}"
        self._ready.set()

    def _run(self, target) -> None:
        try:
            target()
            self.error = "the server returned"
        except BaseException as e:  # noqa: BLE001 - reported by ready() or ends the process
            self.error = f"{type(e).__name__}: {e}"
            log.error("%s failed:\n%s", self.name, traceback.format_exc())
        if self._ready.is_set():
            log.error("%s stopped after it was ready (%s); exiting so Ray restarts it", self.name, self.error)
            os._exit(1)
        self._ready.set()

    def _target(self, port: int):
        """The `anole serve` function of this role, bound to its arguments."""
        spec, topo, bind = self.spec, self.topology, self.topology.bind
        if isinstance(spec, MemoryNodeSpec):
            cfg = MemoryNodeConfig(backend=spec.backend, threads=spec.threads, max_nq=spec.max_nq,
                                   backend_options=dict(spec.backend_options))
            return lambda: run_memory_node(topo.index, spec.shard, bind, port, lut_bits=spec.lut_bits, k=spec.k,
                                           config=cfg, on_ready=self._on_ready)
        if isinstance(spec, CoordinatorSpec):
            import ray  # lazy: only ever runs inside a Ray actor

            addresses = ray.get(self.registry.shard_addresses.remote())
            cfg = CoordinatorConfig(max_batch=spec.max_batch, max_wait_s=spec.max_wait_ms / 1e3,
                                    timeout_s=spec.timeout)
            return lambda: run_coordinator(topo.index, addresses, bind, port, cfg, on_ready=self._on_ready)
        if isinstance(spec, ApiSpec):
            return self._api_target(spec, port)
        assert isinstance(spec, LLMNodeSpec), spec
        engine = llm_engine(spec)
        from llm_node.server import run_llm_node  # lazy: torch, only on LLM hosts

        return lambda: run_llm_node(engine, bind, port, on_ready=self._on_ready)

    def _api_target(self, spec: ApiSpec, port: int):
        """`anole serve api` over the topology's LLM node and, for its datastore, every memory-node replica."""
        import ray  # lazy: only ever runs inside a Ray actor

        from host.api.config import ApiConfig  # lazy: torch, only on the API's host
        from host.api.server import run_api  # lazy: torch, only on the API's host
        from host.ralm.flows import RalmConfig  # lazy: torch, only on the API's host

        llm = ray.get(self.registry.previous.remote(spec.llm_node))["address"]
        nodes = ray.get(self.registry.shard_addresses.remote()) if spec.datastore else []
        cfg = ApiConfig(model=Path(spec.model), llm_node=llm, served_model_name=spec.served_model_name,
                        knn=spec.knn and Path(spec.knn), knn_nodes=nodes if spec.knn else [],
                        chunks=spec.chunks and Path(spec.chunks), chunk_nodes=nodes if spec.chunks else [],
                        retrieval=spec.retrieval, ralm=RalmConfig(**spec.ralm_options()), max_n=spec.max_n,
                        max_body_mb=spec.max_body_mb)
        embedder = None
        if spec.chunks:
            from host.ralm.corpus import Embedder  # lazy: torch (MiniLM)
            embedder = Embedder()
        return lambda: run_api(cfg, self.topology.bind, port, embedder, on_ready=self._on_ready)


def llm_engine(spec: LLMNodeSpec):
    """The engine `anole serve llm-node` builds for these options."""
    from llm_node.config import EngineConfig  # lazy: torch, only on LLM hosts
    from llm_node.sched.latency import LatencyModel  # lazy: torch, only on LLM hosts
    from llm_node.sched.registry import NEEDS_MODEL, make_policy  # lazy: torch, only on LLM hosts
    from llm_node.sched.serving import serving_engine  # lazy: torch, only on LLM hosts

    policy = None
    if spec.scheduler:
        model = LatencyModel.load(spec.latency_model) if spec.scheduler in NEEDS_MODEL else None
        policy = make_policy(spec.scheduler, model, tbt=spec.tbt)
    return serving_engine(EngineConfig(spec.model, device=spec.device, dtype=spec.dtype,
                                       num_kv_blocks=spec.kv_blocks, max_num_seqs=spec.max_num_seqs), policy)
