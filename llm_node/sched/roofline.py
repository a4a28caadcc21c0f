"""An analytic GPU latency model in the profiler's format, for simulating GPUs this machine does not have.

NOT a measurement: a roofline of a dense decoder on a GPU, with the two facts PD multiplexing rests on
written as parameters: HBM bandwidth is reachable from a fraction of the SMs (`bw_saturation_share`;
decode is bandwidth-bound, so it loses little on a small partition while prefill, compute-bound, scales
with its SMs), and two partitions running together slow each other (`interference`). Replace it with
`anole llm profile --device cuda` output when a GPU is at hand; docs/latency-model.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from llm_node.sched.latency import LatencyModel, Split


@dataclass(frozen=True, slots=True)
class GPUSpec:
    name: str = "H100-SXM (analytic roofline, not measured)"
    peak_flops: float = 989e12        # dense bf16
    mem_bw: float = 3.35e12           # bytes/s
    sms: int = 132
    mfu: float = 0.6                  # achievable fraction of peak in GEMMs
    bw_eff: float = 0.8               # achievable fraction of HBM bandwidth
    bw_saturation_share: float = 0.4  # SM share from which bandwidth is saturated
    interference: float = 0.1         # slowdown of each partition while the other runs
    launch_s: float = 2e-4            # per step overhead (launches, scheduling)


@dataclass(frozen=True, slots=True)
class DecoderCost:
    """What passes of a dense decoder cost, whatever the device: FLOPs and bytes moved (weights read once
    per pass, every cached K and V read). Shared by this file's roofline and RAGO's (host/rago/llm_latency.py)."""

    params: float     # parameters
    layers: int
    hidden: int
    kv_dim: int       # K (or V) width per layer; < hidden with grouped-query attention
    bytes_per: float  # bytes per parameter and per cached K or V element

    @property
    def flops_per_token(self) -> float:
        return 2 * self.params

    @property
    def flops_per_pair(self) -> float:
        """Per (query, key) pair: QK and PV, a multiply-add each over `hidden`, in every layer."""
        return 4 * self.layers * self.hidden

    @property
    def weight_bytes(self) -> float:
        return self.params * self.bytes_per

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token."""
        return 2 * self.layers * self.kv_dim * self.bytes_per

    def prefill_flops(self, batch: int, tokens: int, context: int = 0) -> float:
        """`batch` prompts of `tokens` new tokens after `context` cached ones: tokens x (context + tokens / 2)
        attention pairs each."""
        return (self.flops_per_token * batch * tokens
                + self.flops_per_pair * batch * tokens * (2 * context + tokens) / 2)

    def prefill_bytes(self, batch: int, tokens: int, context: int = 0) -> float:
        return self.weight_bytes + batch * (context + tokens) * self.kv_bytes_per_token

    def decode_flops(self, batch: int, context: int) -> float:
        """One token of each of `batch` sequences with `context` tokens of KV cache."""
        return self.flops_per_token * batch + self.flops_per_pair * batch * context

    def decode_bytes(self, batch: int, context: int) -> float:
        return self.weight_bytes + batch * context * self.kv_bytes_per_token


@dataclass(frozen=True, slots=True)
class LLMSpec:
    name: str = "Llama-3-8B bf16"
    params: float = 8.0e9
    layers: int = 32
    hidden: int = 4096
    kv_heads: int = 8
    head_dim: int = 128
    bytes_per: int = 2

    @property
    def cost(self) -> DecoderCost:
        return DecoderCost(self.params, self.layers, self.hidden, self.kv_heads * self.head_dim, self.bytes_per)


def _coefs(g: GPUSpec, m: LLMSpec, share: float, slow: float) -> tuple[dict, dict]:
    flops = g.peak_flops * g.mfu * share / slow
    bw = g.mem_bw * g.bw_eff * min(1.0, share / g.bw_saturation_share) / slow
    c = m.cost
    prefill = {"c0": g.launch_s + c.weight_bytes / bw, "tokens": c.flops_per_token / flops,
               "attn": c.flops_per_pair / flops, "context": c.kv_bytes_per_token / bw}  # KV re-read
    decode = {"c0": g.launch_s + c.weight_bytes / bw, "batch": c.flops_per_token / flops,
              "context": c.kv_bytes_per_token / bw}
    return prefill, decode


def roofline_model(gpu: GPUSpec = GPUSpec(), llm: LLMSpec = LLMSpec(),
                   shares: tuple[float, ...] = (0.25, 0.375, 0.5, 0.625, 0.75)) -> LatencyModel:
    p, d = _coefs(gpu, llm, 1.0, 1.0)
    full = Split(1.0, p, d, gpu.sms, gpu.sms)
    splits = []
    for f in shares:
        k = round(f * gpu.sms)
        p, _ = _coefs(gpu, llm, k / gpu.sms, 1 + gpu.interference)
        _, d = _coefs(gpu, llm, 1 - k / gpu.sms, 1 + gpu.interference)
        splits.append(Split(f, p, d, k, gpu.sms - k))
    kv_token = llm.cost.kv_bytes_per_token
    return LatencyModel(f"{gpu.name}, {llm.name}", full, splits, kv_token / (gpu.mem_bw * gpu.bw_eff / 2), "cuda",
                        gpu.sms, {"analytic": True, "gpu": asdict(gpu), "llm": asdict(llm)})
