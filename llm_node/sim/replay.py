"""Replay a simulated workload on the real engine (`MuxEngine`) and compare the simulator's prediction of
every request's TTFT and TTLT with the measured ones (the simulator's validation)."""
from __future__ import annotations

import numpy as np

from llm_node.engine.sequence import SamplingParams
from llm_node.sched.mux_engine import MuxEngine
from llm_node.sim.workload import Request


def eos_at(length: int, prompt_len: int, eos: int):
    """A logits processor that ends generation with EOS after exactly `length` tokens, so the engine (like
    the simulator) stops at the drawn length while max_tokens tells the scheduler nothing."""

    def proc(tokens, logits, hidden):  # in place: one small kernel a step (two at the last)
        if len(tokens) - prompt_len + 1 >= length:
            logits.fill_(-1e9)
            logits[eos] = 0.0
        else:
            logits[eos] = -1e9
        return logits

    return proc


def real_requests(workload: list[Request], vocab: int, eos: int, seed: int = 0, max_tokens: int = 512):
    """MuxEngine requests for the single-turn requests of a workload (random prompt ids, greedy)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in workload:
        if r.dag is not None or len(r.turns) > 1:
            raise ValueError("real replay takes single-turn requests only")
        ids = rng.integers(1, vocab, size=r.prompt_len).tolist()
        ids = [t if t != eos else eos + 1 for t in ids]
        params = SamplingParams(temperature=0, max_tokens=max(max_tokens, r.output_len),
                                logits_processor=eos_at(r.output_len, len(ids), eos))
        out.append((r.arrival, ids, params, r.slo))
    return out


def run_real(engine, policy, workload: list[Request], seed: int = 0):
    """Sequences of the workload served for real by `policy` on `engine` (timings relative to arrival)."""
    mc = engine.model_config
    eos = mc.eos_token_ids[0] if mc.eos_token_ids else 0
    mux = MuxEngine(engine, policy)
    try:
        return mux.run(real_requests(workload, mc.vocab_size, eos, seed)), mux.steps
    finally:
        mux.close()


def compare(sim_seqs, real_seqs) -> dict:
    """Mean absolute relative error of the simulator's TTFT and TTLT against the real run, request by request."""
    def rel(a, b):
        return float(np.mean([abs(x - y) / y for x, y in zip(a, b) if y > 0]))

    sim_t = [q.timings() for q in sim_seqs]
    real_t = [q.timings() for q in real_seqs]
    return {"ttft_rel_err": rel([t["ttft"] for t in sim_t], [t["ttft"] for t in real_t]),
            "ttlt_rel_err": rel([t["ttlt"] for t in sim_t], [t["ttlt"] for t in real_t]),
            "sim_mean_ttlt": float(np.mean([t["ttlt"] for t in sim_t])),
            "real_mean_ttlt": float(np.mean([t["ttlt"] for t in real_t]))}
