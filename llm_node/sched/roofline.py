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
class LLMSpec:
    name: str = "Llama-3-8B bf16"
    params: float = 8.0e9
    layers: int = 32
    hidden: int = 4096
    kv_heads: int = 8
    head_dim: int = 128
    bytes_per: int = 2


def _coefs(g: GPUSpec, m: LLMSpec, share: float, slow: float) -> tuple[dict, dict]:
    flops = g.peak_flops * g.mfu * share / slow
    bw = g.mem_bw * g.bw_eff * min(1.0, share / g.bw_saturation_share) / slow
    weights = m.params * m.bytes_per
    kv_token = 2 * m.layers * m.kv_heads * m.head_dim * m.bytes_per
    prefill = {"c0": g.launch_s + weights / bw, "tokens": 2 * m.params / flops,
               "attn": 4 * m.layers * m.hidden / flops, "context": kv_token / bw}  # QK, PV; KV re-read
    decode = {"c0": g.launch_s + weights / bw, "batch": 2 * m.params / flops, "context": kv_token / bw}
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
    kv_token = 2 * llm.layers * llm.kv_heads * llm.head_dim * llm.bytes_per
    return LatencyModel(f"{gpu.name}, {llm.name}", full, splits, kv_token / (gpu.mem_bw * gpu.bw_eff / 2), "cuda",
                        gpu.sms, {"analytic": True, "gpu": asdict(gpu), "llm": asdict(llm)})
