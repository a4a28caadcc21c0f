"""PD multiplexing (ours): prefill and decode run at the same time on two partitions of one device that
share the paged KV cache, so a finished prefill starts decoding with nothing migrated.

SLO-aware split (`choose_split`): each prefill block takes the configuration of highest predicted prefill
throughput among the measured splits whose decode step on the rest meets the TBT target, and time
sharing (a mixed chunked step on the whole device) when no split pays; nothing decoding: the whole device.
Adaptive gang scheduling: prefill runs in token blocks sized to `block_s` by the model; lanes advance
independently and meet only at block/step boundaries (the driver polls completion events and never
blocks one lane on the other); a block needing more of the device than the decode step in flight leaves
waits for that step. Short requests preempt long prefills at block boundaries: each block serves the
requests with the fewest remaining prompt tokens first.
"""
from __future__ import annotations

from llm_node.engine.scheduler import Batch, grow_decodes
from llm_node.sched.base import LanePolicy, Work, in_prefill, slo_of
from llm_node.sched.latency import LatencyModel
from llm_node.sched.slo import Kind

MIN_BLOCK = 16


class PDMuxPolicy(LanePolicy):
    name = "pd_mux"
    lanes = ("prefill", "decode")

    def __init__(self, model: LatencyModel, tbt: float = 0.1, block_s: float | None = None, margin: float = 0.9,
                 max_block_tokens: int = 2048):
        if not model.splits:
            raise ValueError(f"the latency model of {model.device!r} has no partition splits to multiplex")
        self.model, self.tbt, self.margin = model, tbt, margin
        self.block_s = block_s if block_s is not None else 4 * tbt
        self.max_block_tokens = max_block_tokens
        self.splits_chosen: dict[float, int] = {}

    def tbt_target(self, decoding) -> float:
        """The tightest TBT among decoding latency-sensitive requests, else the default target."""
        tbts = [slo_of(q).tbt for q in decoding if slo_of(q) is not None and slo_of(q).kind is Kind.LATENCY]
        return min(tbts, default=self.tbt)

    def choose_split(self, decoding, ctx: int = 0) -> tuple[float, int]:
        """(prefill share, block tokens) for the next prefill block. Candidates: every measured split whose
        predicted decode step on the rest meets the TBT target, and time sharing (share 1.0: one mixed step
        on the whole device, the decodes plus a prefill chunk sized so the step meets the target, as
        chunked prefill does). The highest predicted prefill throughput wins; nothing decoding: all of it."""
        if not decoding:
            return 1.0, self.block_tokens(1.0, ctx, self.block_s)
        b, c = len(decoding), sum(len(q) for q in decoding)
        limit = self.margin * self.tbt_target(decoding)
        dec = [(1, len(q), True) for q in decoding]
        step = lambda n: self.model.step_time(dec + [(n, ctx + n, False)])
        lo, hi = MIN_BLOCK, self.max_block_tokens
        while hi - lo > 8:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if step(mid) <= limit else (lo, mid)
        n1 = hi if step(hi) <= limit else lo
        best = (n1 / step(n1), 1.0, n1)
        for f in self.model.shares:
            if self.model.decode_time(1 - f, b, c) <= limit:
                n = self.block_tokens(f, ctx, self.block_s)
                best = max(best, (n / self._pt(f, n, ctx), f, n))
        return best[1], best[2]

    def _pt(self, share: float, n: int, ctx: int) -> float:
        return self.model.prefill_chunk(share, n, ctx)

    def dispatch(self, s, lane, busy):
        busy_ids = {q.seq_id for w in busy.values() if w is not None for q in w.batch.seqs}
        if lane == "decode":
            decodes = [q for q in s.running if not in_prefill(q) and q.seq_id not in busy_ids][:s.max_num_seqs]
            pw = busy.get("prefill")
            share = 1.0 if pw is None else round(1 - pw.share, 6)
            if not decodes or share <= 0:
                return None
            batch = Batch()
            for q in grow_decodes(s, decodes, busy_ids):
                batch.add(q, 1)
            return Work("decode", batch, share) if batch.seqs else None
        cands = [q for q in s.running if in_prefill(q) and q.seq_id not in busy_ids] + list(s.waiting)
        if not cands:
            return None
        decoding = [q for q in s.running if not in_prefill(q)]
        cands = self.prefill_order(s, cands)
        f, left = self.choose_split(decoding, cands[0].num_computed_tokens)
        dw = busy.get("decode")
        if dw is not None and dw.share + f > 1 + 1e-9:
            return None  # gang boundary: wait for the decode step that holds the device
        batch = Batch()
        if f >= 1.0 and decoding:  # time sharing: this lane runs the decodes too, in one mixed step
            for q in grow_decodes(s, [q for q in decoding if q.seq_id not in busy_ids][:s.max_num_seqs],
                                  busy_ids):
                batch.add(q, 1)
        n_dec = len(batch.seqs)
        for q in cands:
            if left < MIN_BLOCK and len(batch.seqs) > n_dec:
                break
            if q.status.name == "WAITING":
                if len(s.running) >= s.max_num_seqs or not s.admit(q):
                    continue
            n = min(left, len(q) - q.num_computed_tokens)
            batch.add(q, n)
            left -= n
        if batch.seqs:
            self.splits_chosen[f] = self.splits_chosen.get(f, 0) + 1
        return Work("prefill", batch, f) if batch.seqs else None

    def prefill_order(self, s, cands):
        """Shortest remaining prompt first: short requests overtake long prefills at block boundaries."""
        return sorted(cands, key=lambda q: len(q) - q.num_computed_tokens)

    def block_tokens(self, share: float, ctx: int, budget_s: float) -> int:
        """The most tokens whose predicted prefill block time fits `budget_s` (at least MIN_BLOCK)."""
        lo, hi = MIN_BLOCK, self.max_block_tokens
        if self._pt(share, hi, ctx) <= budget_s:
            return hi
        while hi - lo > 8:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self._pt(share, mid, ctx) <= budget_s else (lo, mid)
        return lo
