"""Latency of model forward passes: a roofline from FLOPs and bytes, or the LLM node's fitted model.

The fitted model is the file ``anole llm profile`` writes (format ``anole-latency/1``, defined and
evaluated by ``llm_node.sched.latency``; docs/latency-model.md). RAGO evaluates its ``full`` (whole
device) coefficients through that module, for B prompts of L new tokens after ctx cached ones and for
decode steps of B sequences of context C. On ``tp`` devices the non-constant part is divided by ``tp``
(an assumption: the file measures one device).
"""
from __future__ import annotations

from pathlib import Path

from host.rago.coeff import Coefficient
from host.rago.resources import GB, Gpu
from host.rago.schema import ModelSpec
from llm_node.sched import latency

TP_LAYER_OVERHEAD = Coefficient(10.0, "us/layer", "assumption: two NVLink all-reduces per layer under tensor parallelism")


class Roofline:
    """Time of a pass = max(FLOPs / (tp * peak * mfu), bytes / (tp * bandwidth * bw_eff)) + TP overhead, with
    the FLOPs and bytes of ``llm_node.sched.roofline.DecoderCost``."""

    def __init__(self, model: ModelSpec, gpu: Gpu):
        self.model, self.gpu, self.cost = model, gpu, model.cost
        self.flops = float(gpu.tflops) * 1e12 * float(gpu.mfu)
        self.bw = float(gpu.mem_bw_gbs) * GB * float(gpu.bw_eff)

    def _time(self, flops: float, nbytes: float, tp: int) -> float:
        overhead = self.model.layers * float(TP_LAYER_OVERHEAD) * 1e-6 if tp > 1 else 0.0
        return max(flops / (tp * self.flops), nbytes / (tp * self.bw)) + overhead

    def prefill(self, batch: int, tokens: int, tp: int = 1, context: int = 0) -> float:
        """Seconds to run ``batch`` prompts of ``tokens`` new tokens each after ``context`` cached tokens."""
        c = self.cost
        return self._time(c.prefill_flops(batch, tokens, context), c.prefill_bytes(batch, tokens, context), tp)

    def decode_step(self, batch: int, context: int, tp: int = 1) -> float:
        """Seconds for one token of each of ``batch`` sequences with ``context`` tokens of KV cache."""
        c = self.cost
        return self._time(c.decode_flops(batch, context), c.decode_bytes(batch, context), tp)

    def coefficients(self) -> dict[str, Coefficient]:
        g = self.gpu
        return {"gpu.tflops": g.tflops, "gpu.mfu": g.mfu, "gpu.mem_bw_gbs": g.mem_bw_gbs, "gpu.bw_eff": g.bw_eff,
                "tp_layer_overhead": TP_LAYER_OVERHEAD}


class FittedLatency:
    """The LLM node's fitted latency model (``llm_node.sched.latency.LatencyModel``) with provenance."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._pairs = latency.pairs
        self.fitted = latency.LatencyModel.load(path)
        self.p, self.d = self.fitted.full.prefill, self.fitted.full.decode

    def prefill(self, batch: int, tokens: int, tp: int = 1, context: int = 0) -> float:
        t = self.fitted.prefill_time(1.0, batch * tokens, batch * self._pairs(tokens, context),
                                     batch * (context + tokens))
        return self.p["c0"] + (t - self.p["c0"]) / tp

    def decode_step(self, batch: int, context: int, tp: int = 1) -> float:
        t = self.fitted.decode_time(1.0, batch, batch * context)
        return self.d["c0"] + (t - self.d["c0"]) / tp

    def coefficients(self) -> dict[str, Coefficient]:
        src = f"fitted: {self.path} ({self.fitted.device})"
        units = {"c0": "s", "tokens": "s/token", "attn": "s/pair", "batch": "s/seq", "context": "s/token"}
        return {**{f"prefill.{k}": Coefficient(float(v), units.get(k, "s"), src) for k, v in self.p.items()},
                **{f"decode.{k}": Coefficient(float(v), units.get(k, "s"), src) for k, v in self.d.items()}}


class WithEngineOverhead:
    """A forward-pass latency model plus the serving engine's cost per step: ``gpu.step_us`` +
    ``gpu.step_per_seq_us`` x batch on every prefill pass and decode step."""

    def __init__(self, inner: Roofline | FittedLatency, gpu: Gpu):
        self.inner, self.gpu = inner, gpu
        self.a, self.b = float(gpu.step_us) * 1e-6, float(gpu.step_per_seq_us) * 1e-6

    def prefill(self, batch: int, tokens: int, tp: int = 1, context: int = 0) -> float:
        return self.inner.prefill(batch, tokens, tp, context) + self.a + self.b * batch

    def decode_step(self, batch: int, context: int, tp: int = 1) -> float:
        return self.inner.decode_step(batch, context, tp) + self.a + self.b * batch

    def coefficients(self) -> dict[str, Coefficient]:
        return {**self.inner.coefficients(), "gpu.step_us": self.gpu.step_us,
                "gpu.step_per_seq_us": self.gpu.step_per_seq_us}


def latency_model(model: ModelSpec, gpu: Gpu) -> WithEngineOverhead:
    """The model's fitted latency file when the schema names one, else the roofline on ``gpu``; plus the
    engine's per-step cost."""
    inner = FittedLatency(model.latency_model) if model.latency_model else Roofline(model, gpu)
    return WithEngineOverhead(inner, gpu)
