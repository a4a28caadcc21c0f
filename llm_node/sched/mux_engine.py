"""Real execution of any scheduler on the engine: one worker thread per lane, each step on its partition.

PD multiplexing runs a prefill block and a decode step at the same time on two partitions (CUDA: Green
Context SM groups with their own streams; CPU: the analogue, a core split between two threads) over the
engine's one paged KV cache, so nothing is migrated. The driver thread owns the scheduler: it asks the
policy for work whenever a lane is idle, polls completions without blocking (Future.done, CUDA
Event.query), and applies results with the scheduler's postprocess. One-lane policies run the same way
on the whole device, so every scheduler is timed by the same loop.
"""
from __future__ import annotations

import logging
import time

from llm_node.engine.sequence import SamplingParams
from llm_node.partition import Worker, device_units, make_partitions
from llm_node.sched.base import Work, as_lane_policy

log = logging.getLogger(__name__)
POLL_S = 2e-4


class MuxEngine:
    """Drive `engine` (an LLMEngine) with `policy` (engine policy or LanePolicy) for real."""

    def __init__(self, engine, policy):
        self.engine, self.policy = engine, as_lane_policy(policy)
        self.s = engine.scheduler
        self.device = engine.runner.device
        self.units = device_units(self.device)
        self.parts: dict[float, tuple] = {}
        self.workers = {lane: Worker(name=lane) for lane in self.policy.lanes}
        self.steps: dict[str, int] = {lane: 0 for lane in self.policy.lanes}
        self.busy: dict[str, Work | None] = {lane: None for lane in self.policy.lanes}
        self.futs: dict[str, object] = {}
        self.wake: dict[str, float] = {lane: 0.0 for lane in self.policy.lanes}
        self.aborting: set[int] = set()  # seq ids whose abort waits for their step in flight

    def partition(self, lane: str, share: float):
        """The partition holding `share` of the device for `lane` (created once per split)."""
        mine = max(1, min(self.units, round(share * self.units)))
        key, which = (self.units, 0) if mine >= self.units else ((self.units - mine, 1) if lane == "decode"
                                                                  else (mine, 0))
        if key not in self.parts:
            self.parts[key] = make_partitions(self.device, key, self.units)
        return self.parts[key][which]

    def _job(self, work: Work):
        eng, part = self.engine, self.partition(work.lane, work.share)

        def run():
            if work.extra_s:
                time.sleep(work.extra_s)  # stands for a KV transfer the policy charged (PD disaggregation)
            seqs, tokens = eng.run_batch(work.batch)
            return seqs, tokens, part.event()

        return self.workers[work.lane].submit(run, part)

    def add_request(self, prompt_ids, params: SamplingParams | None = None, slo=None, arrival: float | None = None):
        """Queue a request (the engine's checks apply) with an optional SLO; returns its Sequence."""
        return self.engine.add_request(prompt_ids, params, arrival=arrival, slo=slo)

    def abort(self, seq_id: int) -> None:
        """Stop a request and free its KV blocks; one in flight on a lane stops when its step is applied
        (its blocks are being written until then)."""
        if any(q.seq_id == seq_id for w in self.busy.values() if w is not None for q in w.batch.seqs):
            self.aborting.add(seq_id)
        else:
            self.engine.abort(seq_id)

    def has_unfinished(self) -> bool:
        return self.s.has_unfinished() or bool(self.futs)

    def step(self) -> list:
        """Apply finished lane work, start work on idle lanes; never blocks. Returns (sequence, token) for
        every token produced, like LLMEngine.step (a server can call either)."""
        out, t = [], self.s.clock()
        for lane, fut in list(self.futs.items()):
            if not fut.done():
                continue
            seqs, tokens, ev = fut.result()
            if ev is not None and not ev.query():
                continue
            del self.futs[lane]
            work, self.busy[lane] = self.busy[lane], None
            produced, finished = self.engine.postprocess(work.batch, seqs, tokens)
            for q in work.batch.seqs:  # aborts that waited for this step
                if q.seq_id in self.aborting:
                    self.aborting.discard(q.seq_id)
                    if not q.finished:
                        self.engine.abort(q.seq_id)
                        finished.append(q)
            self.policy.complete(self.s, work, finished)
            out += [(q, tok) for q, tok in produced if q.finish_reason != "abort"]
        for lane in self.policy.lanes:
            if self.busy[lane] is None and t >= self.wake[lane]:
                w = self.policy.dispatch(self.s, lane, self.busy)
                if isinstance(w, Work):
                    self.busy[lane], self.futs[lane] = w, self._job(w)
                    self.steps[lane] += 1
                elif w is not None:
                    self.wake[lane] = w
        return out

    def run(self, requests) -> list:
        """requests: (arrival offset s, prompt ids, SamplingParams, SLO or None), in any order. Replays them
        in real time and returns their Sequences (timings on perf_counter) in the given order."""
        order = sorted(range(len(requests)), key=lambda i: requests[i][0])
        seqs: list = [None] * len(requests)
        t0, nxt = time.perf_counter(), 0
        while nxt < len(order) or self.has_unfinished():
            t = time.perf_counter()
            while nxt < len(order) and t0 + requests[order[nxt]][0] <= t:
                i = order[nxt]
                off, ids, params, slo = requests[i]
                seqs[i], nxt = self.add_request(ids, params, slo, arrival=t0 + off), nxt + 1
            before = sum(self.steps.values())
            if not self.step() and sum(self.steps.values()) == before:
                time.sleep(POLL_S)
        return seqs

    def close(self):
        for w in self.workers.values():
            w.close()
