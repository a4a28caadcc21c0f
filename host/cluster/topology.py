"""The topology file of `anole cluster up` (docs/cluster.md): which servers run, with what, where.

    namespace: anole            # Ray namespace of the detached actors (status/down find them there)
    index: build/idx            # index directory, the same path on every memory-node and coordinator host
                                # (a relative path is taken from where `up` runs)
    bind: 0.0.0.0               # servers listen here; 0.0.0.0 advertises the Ray node's IP
    wait_s: 60                  # how long `up` waits for hosts with the resources asked and for servers
    max_restarts: 3             # a crashed server's actor comes back this often (on a host with its resources)
    memory_node: {backend: cpu, replicas: 1, num_cpus: 1, k: 10}     # defaults of every shard
    shards:                     # a count (all defaults) or shard -> overrides of memory_node
      0: {backend: xrt, resources: {alveo_u250: 1}, backend_options: {xclbin: anole.xclbin}}
      1: {backend: xrt, resources: {alveo_u250: 1}, backend_options: {xclbin: anole.xclbin}}
    llm_nodes:
      - {name: llm0, model: build/llm/demo, device: cuda, num_gpus: 1, scheduler: fcfs}
    coordinators:
      - {name: coordinator, port: 7000, max_batch: 256}
    api: {port: 8000, llm_node: llm0}   # the HTTP front door (`anole serve api`), optional; with `knn: DIR`
                                        # or `chunks: DIR` (a datastore whose DIR/index is `index`) it retrieves

Every replica of every shard starts; the coordinators and the API get them all (``0=h:p|h:p,1=...``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from host.cluster.ray_env import REGISTRY
from host.spec.errors import InputError

ROLES = ("memory-node", "llm-node", "coordinator", "api")
"""The order in which `up` starts the servers: each finds the addresses of those it needs in the registry."""


@dataclass(slots=True)
class Placement:
    """What a server's actor asks of its host: CPUs, GPUs and custom resources (``ray start --resources``)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise InputError(f"num_cpus and num_gpus must be >= 0, not {self.num_cpus}, {self.num_gpus}")
        if not isinstance(self.resources, dict) or any(not isinstance(v, (int, float)) or v <= 0
                                                       for v in self.resources.values()):
            raise InputError(f"resources must map names to positive amounts, not {self.resources!r}")

    def demand(self) -> dict[str, float]:
        """Every resource asked, Ray's names (CPU, GPU) included."""
        out = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        return {k: float(v) for k, v in out.items() if v}


@dataclass(slots=True)
class MemoryNodeSpec:
    """One shard's memory nodes: `anole serve memory-node` options, replicas and placement."""

    shard: int
    backend: str = "cpu"
    replicas: int = 1
    lut_bits: int = 16
    k: int = 10
    threads: int = 0
    max_nq: int = 4096
    backend_options: dict = field(default_factory=dict)
    port: int = 0
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self):
        if self.shard < 0 or self.replicas < 1 or not 0 <= self.port < 65536:
            raise InputError(f"shard {self.shard}: bad shard, replicas={self.replicas} or port={self.port}")

    def name(self, replica: int) -> str:
        return f"memory-node-{self.shard}-{replica}"


@dataclass(slots=True)
class LLMNodeSpec:
    """One LLM node: `anole serve llm-node` options and placement (``num_gpus: 1`` for a GPU host)."""

    name: str
    model: str
    device: str = "cpu"
    dtype: str = "float32"
    kv_blocks: int = 1024
    max_num_seqs: int = 64
    scheduler: str | None = None
    latency_model: str | None = None
    tbt: float = 0.1
    port: int = 0
    placement: Placement = field(default_factory=Placement)


@dataclass(slots=True)
class CoordinatorSpec:
    """One coordinator: `anole serve coordinator` options; its memory nodes are discovered, not listed."""

    name: str = "coordinator"
    port: int = 0
    max_batch: int = 256
    max_wait_ms: float = 0.0
    timeout: float = 30.0
    placement: Placement = field(default_factory=Placement)


@dataclass(slots=True)
class ApiSpec:
    """The HTTP front door: `anole serve api` options. Its LLM node (``llm_node``: a name of the topology's,
    default the first) and its memory nodes (those of the topology's shards, serving the datastore ``knn`` or
    ``chunks`` whose ``index`` the topology deploys) are discovered; ``model`` defaults to the LLM node's."""

    name: str = "api"
    port: int = 0
    llm_node: str | None = None
    model: str | None = None
    served_model_name: str | None = None
    knn: str | None = None
    chunks: str | None = None
    retrieval: str | None = None
    nprobe: int | None = None
    k: int | None = None
    lam: float | None = None
    knn_temperature: float | None = None
    interval: int | None = None
    max_n: int = 8
    max_body_mb: float = 16.0
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self):
        if self.knn and self.chunks:
            raise InputError("the API can retrieve from the topology's one index: give `knn` or `chunks`, not both")
        if not 0 <= self.port < 65536:
            raise InputError(f"api: bad port {self.port}")

    @property
    def datastore(self) -> str | None:
        return self.knn or self.chunks

    def ralm_options(self) -> dict:
        """The RalmConfig fields given (the others keep RalmConfig's defaults)."""
        given = {"nprobe": self.nprobe, "k": self.k, "lam": self.lam, "knn_temperature": self.knn_temperature,
                 "interval": self.interval}
        return {k: v for k, v in given.items() if v is not None}


@dataclass(slots=True)
class Topology:
    """A whole deployment: index, memory nodes per shard, LLM nodes, coordinators, the API."""

    index: str
    namespace: str = "anole"
    bind: str = "0.0.0.0"
    wait_s: float = 60.0
    max_restarts: int = 3
    shards: list[MemoryNodeSpec] = field(default_factory=list)
    llm_nodes: list[LLMNodeSpec] = field(default_factory=list)
    coordinators: list[CoordinatorSpec] = field(default_factory=list)
    api: ApiSpec | None = None

    def __post_init__(self):
        if not self.shards:
            raise InputError("the topology has no memory nodes: give `shards` (a count or shard -> settings)")
        ids = [s.shard for s in self.shards]
        if ids != list(range(len(ids))):
            missing = sorted(set(range(max(ids) + 1)) - set(ids))
            raise InputError(f"shard(s) {missing} have no memory node; list every shard 0..{max(ids)}")
        names = [name for name, _, _ in self.servers()] + [REGISTRY]
        if len(set(names)) != len(names):
            raise InputError(f"server names must be distinct (and not {REGISTRY!r}): {names[:-1]}")
        if self.wait_s <= 0 or self.max_restarts < 0:
            raise InputError(f"wait_s must be > 0 and max_restarts >= 0, not {self.wait_s}, {self.max_restarts}")
        if self.api is not None:
            self._check_api(self.api)

    def _check_api(self, api: ApiSpec) -> None:
        """The API's LLM node is one of the topology's; its datastore's index is the one the memory nodes serve."""
        llms = {x.name: x for x in self.llm_nodes}
        if not llms:
            raise InputError("the API needs an LLM node: list one under `llm_nodes`")
        api.llm_node = api.llm_node or self.llm_nodes[0].name
        if api.llm_node not in llms:
            raise InputError(f"the API's llm_node {api.llm_node!r} is not among the LLM nodes {sorted(llms)}")
        api.model = api.model or llms[api.llm_node].model
        if api.datastore and Path(api.datastore, "index").resolve() != Path(self.index).resolve():
            raise InputError(f"the API's datastore {api.datastore} searches {Path(api.datastore, 'index')}, the "
                             f"memory nodes serve {self.index}: set `index: {Path(api.datastore, 'index')}`")

    def servers(self) -> list[tuple[str, str, object]]:
        """(actor name, role, spec) of every server in ROLES order: those a server needs come before it."""
        out = [(s.name(r), "memory-node", s) for s in self.shards for r in range(s.replicas)]
        out += [(x.name, "llm-node", x) for x in self.llm_nodes]
        out += [(c.name, "coordinator", c) for c in self.coordinators]
        return out + ([(self.api.name, "api", self.api)] if self.api is not None else [])


def load_topology(path: str | Path) -> Topology:
    """Read and check a topology YAML file; InputError names the bad key or value."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read topology {path}: {e}") from None
    if not isinstance(raw, dict) or "index" not in raw:
        raise InputError(f"{path}: a topology is a mapping with at least `index` and `shards`")
    raw["index"] = str(Path(raw["index"]).resolve())   # workers do not share this process's directory
    for key in ("knn", "chunks"):
        if isinstance(raw.get("api"), dict) and raw["api"].get(key):
            raw["api"] = dict(raw["api"], **{key: str(Path(raw["api"][key]).resolve())})
    return parse_topology(raw, str(path))


def parse_topology(raw: dict, where: str = "topology") -> Topology:
    raw = dict(raw)
    defaults = raw.pop("memory_node", None) or {}
    shards = raw.pop("shards", None)
    if isinstance(shards, int) and not isinstance(shards, bool):
        shards = {s: {} for s in range(shards)}
    if not isinstance(shards, dict):
        raise InputError(f"{where}: `shards` must be a count or a mapping shard -> settings, not {shards!r}")
    try:
        shards = {int(s): v for s, v in shards.items()}
    except ValueError:
        raise InputError(f"{where}: shard keys must be integers, not {sorted(shards)}") from None
    raw["shards"] = [_spec(MemoryNodeSpec, {**defaults, **(v or {}), "shard": s}, where)
                     for s, v in sorted(shards.items())]
    raw["llm_nodes"] = [_spec(LLMNodeSpec, x, where) for x in raw.get("llm_nodes") or []]
    raw["coordinators"] = [_spec(CoordinatorSpec, x, where) for x in raw.get("coordinators") or [{}]]
    if raw.get("api") is not None:
        raw["api"] = _spec(ApiSpec, raw["api"], where)
    return _spec(Topology, raw, where)


def _spec(cls, values, where: str):
    """``cls(**values)`` with placement keys gathered into a Placement; unknown keys are an InputError."""
    if not isinstance(values, dict):
        raise InputError(f"{where}: expected a mapping for {cls.__name__}, not {values!r}")
    known = {f.name for f in fields(cls)}
    place = {k: values[k] for k in ("num_cpus", "num_gpus", "resources") if k in values and "placement" in known}
    rest = {k: v for k, v in values.items() if k not in place}
    unknown = set(rest) - known
    if unknown:
        raise InputError(f"{where}: unknown key(s) {sorted(unknown)} for {cls.__name__}; known: {sorted(known)}")
    if "placement" in known:
        rest["placement"] = Placement(**place)
    try:
        return cls(**rest)
    except TypeError as e:
        raise InputError(f"{where}: {cls.__name__}: {e}") from None
