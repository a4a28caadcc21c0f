"""Chunked prefill (Sarathi-Serve): every step decodes all running sequences first, then fills a token
budget with prompt chunks. With a latency model and a TBT target, the budget is the largest chunk whose
predicted step time stays within the target (Sarathi picks it by profiling the same way)."""
from __future__ import annotations

from llm_node.engine.scheduler import Batch, SchedulerPolicy, grow_decodes
from llm_node.sched.base import in_prefill, items
from llm_node.sched.latency import LatencyModel

MIN_CHUNK = 16


class ChunkedPrefillPolicy(SchedulerPolicy):
    name = "chunked_prefill"

    def __init__(self, token_budget: int = 512, model: LatencyModel | None = None, tbt: float | None = None):
        if token_budget < MIN_CHUNK:
            raise ValueError(f"token_budget must be >= {MIN_CHUNK}, not {token_budget!r}")
        self.token_budget, self.model, self.tbt = token_budget, model, tbt

    def budget(self, batch: Batch, context: int) -> int:
        """Prefill tokens allowed next to the decodes already in `batch`."""
        if self.model is None or self.tbt is None:
            return self.token_budget
        base, lo, hi = items(batch), MIN_CHUNK, self.token_budget
        fits = lambda n: self.model.step_time(base + [(n, context + n, False)]) <= self.tbt
        if fits(hi):
            return hi
        while hi - lo > MIN_CHUNK:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid)
        return lo

    def schedule(self, s) -> Batch:
        batch = Batch()
        decodes = [q for q in s.running if not in_prefill(q)][:s.max_num_seqs]
        for q in grow_decodes(s, decodes):
            batch.add(q, 1)
        prefills = [q for q in s.running if in_prefill(q)]
        first = prefills[0] if prefills else (s.waiting[0] if s.waiting else None)
        if first is None:
            return batch
        left = min(self.budget(batch, first.num_computed_tokens), s.max_num_batched_tokens - len(batch.seqs))
        for q in prefills:
            if left <= 0:
                return batch
            n = min(left, len(q) - q.num_computed_tokens)
            batch.add(q, n)
            left -= n
        while s.waiting and left > 0 and len(s.running) < s.max_num_seqs:
            q = s.waiting[0]
            if not s.admit(q):
                break
            n = min(left, len(q) - q.num_computed_tokens)
            batch.add(q, n)
            left -= n
        return batch
