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

import torch

from llm_node.engine.sampler import sample
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
            with torch.no_grad():
                rows, hidden, logits = eng.runner.run(work.batch)
                seqs = [work.batch.seqs[i] for i in rows]
                for j, q in enumerate(seqs):
                    if q.params.logits_processor is not None:
                        logits[j] = q.params.logits_processor(list(q.token_ids), logits[j], hidden[j])
                tokens = sample(logits, seqs, eng.generator)
            return seqs, tokens, part.event()

        return self.workers[work.lane].submit(run, part)

    def run(self, requests) -> list:
        """requests: (arrival offset s, prompt ids, SamplingParams, SLO or None), in any order. Replays them
        in real time and returns their Sequences (timings on perf_counter) in the given order."""
        order = sorted(range(len(requests)), key=lambda i: requests[i][0])
        seqs: list = [None] * len(requests)
        busy: dict[str, Work | None] = {lane: None for lane in self.policy.lanes}
        futs: dict[str, object] = {}
        t0, nxt = time.perf_counter(), 0
        wake = {lane: 0.0 for lane in self.policy.lanes}
        while nxt < len(order) or self.s.has_unfinished() or futs:
            t = time.perf_counter()
            while nxt < len(order) and t0 + requests[order[nxt]][0] <= t:
                i = order[nxt]
                off, ids, params, slo = requests[i]
                seq = self.engine.add_request(ids, params or SamplingParams(), arrival=t0 + off)
                seq.slo = slo
                seqs[i], nxt = seq, nxt + 1
            progressed = False
            for lane, fut in list(futs.items()):
                if not fut.done():
                    continue
                out, tokens, ev = fut.result()
                if ev is not None and not ev.query():
                    continue
                del futs[lane]
                work, busy[lane] = busy[lane], None
                finished = self.s.postprocess(work.batch, {q.seq_id: tok for q, tok in zip(out, tokens)})
                self.policy.complete(self.s, work, finished)
                progressed = True
            for lane in self.policy.lanes:
                if busy[lane] is None and t >= wake[lane]:
                    w = self.policy.dispatch(self.s, lane, busy)
                    if isinstance(w, Work):
                        busy[lane], futs[lane] = w, self._job(w)
                        self.steps[lane] += 1
                        progressed = True
                    elif w is not None:
                        wake[lane] = w
            if not progressed:
                time.sleep(POLL_S)
        return seqs

    def close(self):
        for w in self.workers.values():
            w.close()
