"""PD disaggregation (DistServe / Splitwise style) on one device: a prefill instance and a decode instance
on a fixed split, each with its own KV cache. A prompt's KV moves to the decode instance after its
prefill, and a later turn of the conversation must move its reused KV back (D -> P) before its prefill;
both transfers cost `kv_transfer_s_per_token` from the latency model. Block capacity is shared here
(the KV pools are not the bottleneck in our workloads; see docs/scheduling.md)."""
from __future__ import annotations

from llm_node.engine.scheduler import Batch, grow_decodes
from llm_node.sched.base import LanePolicy, Work, in_prefill, now
from llm_node.sched.latency import LatencyModel


class PDDisaggPolicy(LanePolicy):
    name = "pd_disagg"
    lanes = ("prefill", "decode")

    def __init__(self, model: LatencyModel, prefill_share: float | None = None, token_budget: int = 2048):
        if not model.splits:
            raise ValueError(f"the latency model of {model.device!r} has no partition splits")
        shares = model.shares
        self.share = prefill_share if prefill_share is not None else shares[len(shares) // 2]
        if self.share not in shares:
            raise ValueError(f"prefill_share must be one of the measured splits {shares}, not {self.share!r}")
        self.model, self.token_budget = model, token_budget
        self.ready_at: dict[int, float] = {}  # seq_id -> when its KV has reached the decode instance

    def dispatch(self, s, lane, busy):
        busy_ids = {q.seq_id for w in busy.values() if w is not None for q in w.batch.seqs}
        per_token = self.model.kv_transfer_s_per_token
        if lane == "prefill":
            batch, extra = Batch(), 0.0
            for q in [q for q in s.running if in_prefill(q) and q.seq_id not in busy_ids]:
                batch.add(q, len(q) - q.num_computed_tokens)
            while s.waiting and len(s.running) < s.max_num_seqs:
                q = s.waiting[0]
                if batch.seqs and batch.num_tokens + len(q) > self.token_budget or not s.admit(q):
                    break
                extra += per_token * q.num_computed_tokens  # reused KV comes back from the decode instance
                batch.add(q, len(q) - q.num_computed_tokens)
            return Work("prefill", batch, self.share, extra) if batch.seqs else None
        t = now(s)
        decodes = [q for q in s.running if not in_prefill(q) and q.seq_id not in busy_ids]
        ready = [q for q in decodes if self.ready_at.get(q.seq_id, 0.0) <= t + 1e-12][:s.max_num_seqs]
        if not ready:
            return min((self.ready_at[q.seq_id] for q in decodes if q.seq_id in self.ready_at), default=None)
        batch = Batch()
        for q in grow_decodes(s, ready, busy_ids):
            batch.add(q, 1)
        return Work("decode", batch, round(1 - self.share, 6)) if batch.seqs else None

    def complete(self, s, work, finished):
        if work.lane != "prefill":
            return
        t = now(s)
        for q in work.batch.seqs:
            if not q.finished and not in_prefill(q):
                self.ready_at[q.seq_id] = t + self.model.kv_transfer_s_per_token * q.num_computed_tokens
        for q in finished:
            self.ready_at.pop(q.seq_id, None)
