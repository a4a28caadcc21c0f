"""Synthetic workloads: arrivals (Poisson or bursty), prompt/output lengths, multi-turn conversations that
reuse their KV prefix, Tempo's three request kinds and DAG requests. Seeded, so runs repeat exactly.

SLOs are set from the latency model as multiples of the unloaded latency (`SLOScale`), the same for
every scheduler, as the PD-multiplexing and Tempo papers do.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llm_node.sched.latency import LatencyModel
from llm_node.sched.slo import SLO, DagNode, Kind, validate_dag


@dataclass(slots=True)
class Request:
    """A request, a conversation (turns > 1: later turns arrive `think_s` after the previous one finished,
    their prompt = everything so far + `prompt_len` new tokens) or a DAG (`dag`: nodes with lengths)."""

    arrival: float
    prompt_len: int
    output_len: int
    slo: SLO | None = None
    app: str | None = None
    turns: list[tuple[int, int]] = field(default_factory=list)
    think_s: float = 0.0
    dag: list[DagNode] | None = None

    def __post_init__(self):
        if self.dag is not None:
            validate_dag(self.dag)


def arrivals(rate: float, n: int, rng: np.random.Generator, burstiness: float = 1.0) -> np.ndarray:
    """n arrival times at `rate` per second: Poisson for burstiness 1, Gamma inter-arrivals with
    coefficient of variation `burstiness` otherwise (bursty for > 1)."""
    if rate <= 0 or n < 1:
        raise ValueError(f"rate must be > 0 and n >= 1, not {rate!r}, {n!r}")
    shape = 1.0 / burstiness ** 2
    gaps = rng.gamma(shape, 1.0 / (rate * shape), size=n)
    return np.cumsum(gaps) - gaps[0]


def lengths(rng: np.random.Generator, n: int, mean: float, lo: int, hi: int, sigma: float = 0.6) -> np.ndarray:
    """Log-normal lengths with the given mean, clipped to [lo, hi]."""
    mu = np.log(mean) - sigma ** 2 / 2
    return np.clip(np.round(rng.lognormal(mu, sigma, size=n)), lo, hi).astype(int)


@dataclass(slots=True)
class SLOScale:
    """SLO targets as multiples of unloaded latencies on the whole device."""

    model: LatencyModel
    ttft_factor: float = 5.0
    tbt_factor: float = 3.0
    ttlt_factor: float = 3.0
    ref_batch: int = 8
    ref_context: int = 512

    @property
    def tbt(self) -> float:
        return self.tbt_factor * self.model.decode_time(1.0, self.ref_batch, self.ref_batch * self.ref_context)

    def ttft(self, prompt: int) -> float:
        return self.ttft_factor * self.model.prefill_chunk(1.0, prompt)

    def ttlt(self, prompt: int, output: int) -> float:
        per_token = self.model.decode_time(1.0, self.ref_batch, self.ref_batch * self.ref_context)
        return self.ttlt_factor * (self.model.prefill_chunk(1.0, prompt) + output * per_token)

    def latency(self, prompt: int) -> SLO:
        return SLO(Kind.LATENCY, ttft=max(self.ttft(prompt), 2 * self.tbt), tbt=self.tbt)


def chat(model: LatencyModel, rate: float, n: int, seed: int = 0, burstiness: float = 1.0,
         prompt_mean: float = 512, output_mean: float = 128, turns: int = 1, scale: SLOScale | None = None,
         max_len: int = 4096) -> list[Request]:
    """Latency-sensitive chat: n conversations of `turns` turns each (rate counts conversations)."""
    rng = np.random.default_rng(seed)
    scale = scale or SLOScale(model)
    t = arrivals(rate, n, rng, burstiness)
    p = lengths(rng, n * turns, prompt_mean, 8, max_len // 4)
    o = lengths(rng, n * turns, output_mean, 2, max_len // 8)
    out = []
    for i in range(n):
        tt = [(int(p[i * turns + k]), int(o[i * turns + k])) for k in range(turns)]
        out.append(Request(float(t[i]), tt[0][0], tt[0][1], scale.latency(tt[0][0]), "chat", tt,
                           think_s=float(rng.exponential(1.0 / rate)) if turns > 1 else 0.0))
    return out


def mixed(model: LatencyModel, rate: float, n: int, seed: int = 0, burstiness: float = 1.0,
          shares=(0.5, 0.3, 0.2), scale: SLOScale | None = None) -> list[Request]:
    """Tempo's mix: latency-sensitive chat, throughput-intensive batch jobs (long outputs, TTLT deadline)
    and collective DAGs (a planner, 2-3 parallel workers, a summarizer; end-to-end SLO)."""
    rng = np.random.default_rng(seed)
    scale = scale or SLOScale(model)
    t = arrivals(rate, n, rng, burstiness)
    kinds = rng.choice(3, size=n, p=np.asarray(shares) / sum(shares))
    out = []
    for i in range(n):
        if kinds[i] == 0:
            p, o = int(lengths(rng, 1, 384, 16, 1024)[0]), int(lengths(rng, 1, 128, 4, 512)[0])
            out.append(Request(float(t[i]), p, o, scale.latency(p), "chat"))
        elif kinds[i] == 1:
            p, o = int(lengths(rng, 1, 768, 32, 2048)[0]), int(lengths(rng, 1, 384, 32, 1024)[0])
            out.append(Request(float(t[i]), p, o, SLO(Kind.THROUGHPUT, ttlt=scale.ttlt(p, o)), "batch"))
        else:
            w = int(rng.integers(2, 4))
            lp = lengths(rng, w + 2, 256, 16, 1024)
            lo = lengths(rng, w + 2, 96, 4, 256)
            nodes = [DagNode("plan", (), int(lp[0]), int(lo[0]))]
            nodes += [DagNode(f"work{j}", ("plan",), int(lp[j + 1]), int(lo[j + 1])) for j in range(w)]
            nodes.append(DagNode("sum", tuple(f"work{j}" for j in range(w)), int(lp[-1]), int(lo[-1])))
            chain = [nodes[0], max(nodes[1:-1], key=lambda x: x.prompt_len + x.output_len), nodes[-1]]
            e2e = sum(scale.ttlt(x.prompt_len, x.output_len) for x in chain)
            out.append(Request(float(t[i]), 0, 0, SLO(Kind.COLLECTIVE, ttlt=e2e), "agent", dag=nodes))
    return out
