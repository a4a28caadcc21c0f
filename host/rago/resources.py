"""Hardware a RAG pipeline may use (GPUs, CPU servers, FPGA memory nodes, network), search limits and SLO.

Every rate is a Coefficient: a plain number in a schema takes the resource's ``source`` (e.g.
``"spec: H100 SXM datasheet"``) or the schema file as its provenance; ``{value, source}`` overrides it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from host.rago.coeff import Coefficient, SchemaError, build, check_keys

GB = 1e9


def _assume(value: float, unit: str, why: str) -> Coefficient:
    return Coefficient(value, unit, f"assumption: {why}")


@dataclass(frozen=True, slots=True)
class Gpu:
    """An accelerator for model stages: peak ``tflops`` (dense 16-bit), ``mem_bw_gbs``, ``memory_gb``;
    ``mfu`` and ``bw_eff`` are the fractions of peak compute and bandwidth reached. ``step_us`` +
    ``step_per_seq_us`` x batch is what the serving engine adds to every forward pass (scheduling, sampling,
    streaming; for retrieval per token also the hand-over of the query and of the neighbours)."""

    count: int
    tflops: Coefficient
    mem_bw_gbs: Coefficient
    memory_gb: Coefficient
    mfu: Coefficient = None
    bw_eff: Coefficient = None
    step_us: Coefficient = None
    step_per_seq_us: Coefficient = None
    cost: float = 1.0
    source: str = ""
    COEFFS = {"tflops": "TFLOP/s", "mem_bw_gbs": "GB/s", "memory_gb": "GB", "mfu": "1", "bw_eff": "1",
              "step_us": "us", "step_per_seq_us": "us"}
    DEFAULTS = {"mfu": _assume(0.5, "1", "typical prefill MFU"), "bw_eff": _assume(0.8, "1", "typical HBM efficiency"),
                "step_us": _assume(0.0, "us", "engine overhead hidden behind the forward pass"),
                "step_per_seq_us": _assume(0.0, "us", "engine overhead hidden behind the forward pass")}
    INTEGER = ("count",)
    POSITIVE = ("count",)


@dataclass(frozen=True, slots=True)
class CpuServer:
    """A retrieval server scanning PQ codes on ``cores`` cores at ``scan_rate`` codes/s/core, bounded by
    ``mem_bw_gbs``; ``batch_overhead_us`` is the fixed cost of one retrieval batch (coarse search, setup),
    ``per_query_us`` the cost of each query in it (its lookup tables). ``scan_rate``, ``per_query_us`` and
    ``batch_overhead_us`` may come from a calibration file instead (``anole rago calibrate``)."""

    count: int
    cores: int
    memory_gb: Coefficient
    mem_bw_gbs: Coefficient
    scan_rate: Coefficient | None = None
    batch_overhead_us: Coefficient = None
    per_query_us: Coefficient = None
    cost: float = 0.3
    source: str = ""
    COEFFS = {"memory_gb": "GB", "mem_bw_gbs": "GB/s", "scan_rate": "codes/s/core", "batch_overhead_us": "us",
              "per_query_us": "us"}
    DEFAULTS = {"batch_overhead_us": _assume(200.0, "us", "coarse search and dispatch of one batch"),
                "per_query_us": _assume(0.0, "us", "lookup-table construction folded into scan_rate")}
    INTEGER = ("count", "cores")
    POSITIVE = ("count", "cores")


@dataclass(frozen=True, slots=True)
class Fpga:
    """An FPGA memory node (anole's scan kernel): ``kernels`` x ``lanes`` codes/cycle x ``efficiency`` at
    ``clock_mhz``, bounded by ``mem_bw_gbs`` of its ``memory_gb`` of DRAM/HBM."""

    count: int
    lanes: int
    clock_mhz: Coefficient
    memory_gb: Coefficient
    mem_bw_gbs: Coefficient
    kernels: int = 1
    efficiency: Coefficient = None
    batch_overhead_us: Coefficient = None
    cost: float = 0.3
    source: str = ""
    COEFFS = {"clock_mhz": "MHz", "memory_gb": "GB", "mem_bw_gbs": "GB/s", "efficiency": "codes/cycle/lane",
              "batch_overhead_us": "us"}
    DEFAULTS = {"efficiency": Coefficient(0.95, "codes/cycle/lane", "spec: design.md section 7 RTL scan-rate target"),
                "batch_overhead_us": _assume(50.0, "us", "host table construction and kernel launch")}
    INTEGER = ("count", "lanes", "kernels")
    POSITIVE = ("count", "lanes", "kernels")

    @property
    def scan_rate(self) -> float:
        """Codes/s of one node: the kernels' rate bounded by memory bandwidth (pq_bytes applied by caller)."""
        return self.kernels * self.lanes * float(self.efficiency) * float(self.clock_mhz) * 1e6


@dataclass(frozen=True, slots=True)
class Network:
    """Coordinator <-> node messages: ``rpc_latency_us`` per round trip plus bytes / ``bandwidth_gbs``;
    ``coordinator_us`` is the coordinator's own work per retrieval batch (coarse search, framing, merge)."""

    rpc_latency_us: Coefficient = None
    bandwidth_gbs: Coefficient = None
    coordinator_us: Coefficient = None
    source: str = ""
    COEFFS = {"rpc_latency_us": "us", "bandwidth_gbs": "GB/s", "coordinator_us": "us"}
    DEFAULTS = {"rpc_latency_us": _assume(100.0, "us", "datacenter TCP round trip"),
                "bandwidth_gbs": _assume(12.5, "GB/s", "100 Gb Ethernet"),
                "coordinator_us": _assume(100.0, "us", "coarse search, framing and merge per batch")}


@dataclass(frozen=True, slots=True)
class SearchSpace:
    """Optimizer limits: batch sizes are powers of two up to ``max_batch`` (``max_decode_batch`` for
    decode); chips per placement group powers of two up to ``max_chips``, tensor parallelism up to
    ``max_tp`` (one NVLink domain); retrieval nodes up to ``max_node_factor`` x the minimum that holds
    the database."""

    max_batch: int = 64
    max_decode_batch: int = 256
    max_chips: int = 64
    max_tp: int = 8
    max_node_factor: int = 8
    INTEGER = ("max_batch", "max_decode_batch", "max_chips", "max_tp", "max_node_factor")
    POSITIVE = INTEGER


@dataclass(frozen=True, slots=True)
class Slo:
    """Service-level objectives in ms; 0 means none."""

    ttft_ms: float = 0.0
    tpot_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Resources:
    """What the optimizer may allocate: GPUs for model stages; CPU servers and/or FPGA nodes for retrieval."""

    gpu: Gpu
    cpu_server: CpuServer | None = None
    fpga: Fpga | None = None
    network: Network = field(default_factory=lambda: Network(**Network.DEFAULTS))

    @classmethod
    def parse(cls, d: dict, source: str) -> "Resources":
        check_keys("resources", d, {"gpu", "cpu_server", "fpga", "network"}, {"gpu"})
        kw = {}
        for key, kind in (("gpu", Gpu), ("cpu_server", CpuServer), ("fpga", Fpga), ("network", Network)):
            if d.get(key) is not None:
                sub = d[key]
                src = sub.get("source", source) if isinstance(sub, dict) else source
                kw[key] = build(kind, f"resources.{key}", sub, src)
        if "cpu_server" not in kw and "fpga" not in kw:
            raise SchemaError("resources: retrieval needs resources.cpu_server or resources.fpga")
        return cls(**kw)

    def without(self, kind: str) -> "Resources":
        """A copy without ``cpu_server`` or ``fpga`` (to compare retrieval hardware)."""
        return replace(self, **{kind: None})

    def min_chips(self, weight_bytes: float) -> int:
        """Smallest power-of-two number of GPUs whose memory (90 % usable) holds ``weight_bytes``."""
        per = float(self.gpu.memory_gb) * GB * 0.9
        return 1 << max(0, math.ceil(math.log2(max(1.0, weight_bytes / per))))

    def min_nodes(self, kind: str, database_bytes: float) -> int:
        node = getattr(self, kind)
        return max(1, math.ceil(database_bytes / (float(node.memory_gb) * GB * 0.9)))

    def check_fits(self, schema) -> None:
        """SchemaError naming the field when a model or the database cannot fit the resources at all."""
        total = 0
        for model in {schema.llm(s).model.name: schema.llm(s).model for s in schema.accel_stages}.values():
            need = self.min_chips(model.weight_bytes)
            if need > self.gpu.count:
                raise SchemaError(
                    f"models.{model.name}: {model.weight_bytes / GB:.0f} GB of weights need {need} GPUs of "
                    f"{float(self.gpu.memory_gb):g} GB, but resources.gpu.count is {self.gpu.count}")
            total += need
        if total > self.gpu.count:
            raise SchemaError(f"resources.gpu.count: the models need {total} GPUs together, only {self.gpu.count} given")
        db = schema.retrieval.database_bytes
        fits = [k for k in ("cpu_server", "fpga") if getattr(self, k) and self.min_nodes(k, db) <= getattr(self, k).count]
        if not fits:
            have = ", ".join(f"resources.{k}: {getattr(self, k).count} x {float(getattr(self, k).memory_gb):g} GB"
                             for k in ("cpu_server", "fpga") if getattr(self, k))
            raise SchemaError(f"stages.retrieval: the database ({db / GB:,.0f} GB of codes and ids) does not fit "
                              f"the retrieval nodes ({have})")
