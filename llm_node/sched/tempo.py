"""Tempo: service-gain scheduling for mixed SLOs (latency-sensitive, throughput-intensive, collective DAGs).

Each step gives every request *just enough*: a unit of work (a decode token or a prompt chunk) is due when
the request's latest start time for meeting its SLO is near. Latest start times come from the latency
model and a predicted output length:
  latency     next token i due at arrival + ttft + i * tbt (the first one minus its prefill time);
  throughput  deadline - (predicted remaining tokens) x (predicted step time) - remaining prefill;
  collective  as throughput, with the node's deadline = DAG start + e2e SLO - the predicted critical
              path of its descendants (DAG awareness).
Due units go first in order of latest start (EDF on slack), then the rest of the token budget is filled
the same way (work conserving). Where the model says a mixed step costs more than its halves apart
(anole's padded attention), only the more urgent half runs. Requests that can no longer meet their SLO
are demoted behind all others, so they never take capacity from ones that still can (an impossible SLO
is logged and treated alike).
"""
from __future__ import annotations

import bisect
import logging
from collections import defaultdict, deque

from llm_node.engine.scheduler import Batch, SchedulerPolicy, grow_decodes
from llm_node.sched.base import in_prefill, items, now, slo_of
from llm_node.sched.latency import LatencyModel
from llm_node.sched.pd_mux import PDMuxPolicy
from llm_node.sched.slo import Kind, critical_path

log = logging.getLogger(__name__)
LATE = 1e9  # added to the key of demoted requests


class OutputLengthPredictor:
    """Online conditional quantile of output lengths per class: given g tokens so far, the q-quantile of
    observed lengths above g (1.5 g when none is), capped by the request's max_tokens."""

    def __init__(self, quantile: float = 0.8, prior: int = 128, window: int = 512):
        self.quantile, self.prior, self.window = quantile, prior, window
        self.seen: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))

    def observe(self, key: str, length: int) -> None:
        self.seen[key].append(length)

    def predict(self, key: str, generated: int, max_tokens: int) -> int:
        hist = sorted(self.seen.get(key, ()))
        rest = hist[bisect.bisect_right(hist, generated):]
        if rest:
            total = rest[min(len(rest) - 1, int(self.quantile * len(rest)))]
        else:
            total = max(self.prior, int(1.5 * generated)) if not hist else int(1.5 * generated) + 1
        return max(generated + 1, min(total, max_tokens))


class TempoPolicy(SchedulerPolicy):
    name = "tempo"

    def __init__(self, model: LatencyModel, token_budget: int = 512, horizon_steps: float = 2.0,
                 predictor: OutputLengthPredictor | None = None):
        self.model, self.token_budget, self.horizon_steps = model, token_budget, horizon_steps
        self.predictor = predictor or OutputLengthPredictor()
        self.tracked: dict[int, object] = {}
        self.warned: set[int] = set()

    def _learn(self, s) -> None:
        for sid, q in list(self.tracked.items()):
            if q.finished:
                if q.finish_reason in ("stop", "length"):
                    self.predictor.observe(self._class(q), len(q.completion_ids))
                del self.tracked[sid]
        for q in [*s.running, *s.waiting]:
            self.tracked.setdefault(q.seq_id, q)

    @staticmethod
    def _class(q) -> str:
        slo = slo_of(q)
        return getattr(q, "app", None) or (slo.kind.value if slo else "none")

    def _remaining_tokens(self, q) -> int:
        g = len(q.completion_ids)
        return self.predictor.predict(self._class(q), g, q.params.max_tokens) - g

    def _prefill_left(self, q) -> float:
        n = len(q) - q.num_computed_tokens if in_prefill(q) else 0
        return self.model.prefill_chunk(1.0, n, q.num_computed_tokens) if n else 0.0

    def latest_start(self, q, t: float, step: float) -> float:
        """When the next unit of q must start for q to meet its SLO (smaller = more urgent)."""
        slo = slo_of(q)
        if slo is None or slo.kind is Kind.BEST_EFFORT:
            return q.arrival_time + LATE / 2
        if slo.kind is Kind.LATENCY:
            due = slo.token_deadline(q.arrival_time, len(q.completion_ids))
            return due - (self._prefill_left(q) if in_prefill(q) else step)
        deadline = q.arrival_time + slo.ttlt
        if slo.kind is Kind.COLLECTIVE:
            deadline = getattr(q, "dag_start", q.arrival_time) + slo.ttlt - self._dag_tail(q, step)
        return deadline - self._remaining_tokens(q) * step - self._prefill_left(q)

    def _dag_tail(self, q, step: float) -> float:
        """Predicted time of the longest chain of q's descendants in its DAG (0 outside a DAG)."""
        nodes, name = getattr(q, "dag_nodes", None), getattr(q, "dag_node", None)
        if not nodes or name is None:
            return 0.0
        cost = {n.name: self.model.prefill_chunk(1.0, n.prompt_len)
                + self.predictor.predict(Kind.COLLECTIVE.value, 0, n.output_len or 1 << 20) * step for n in nodes}
        return critical_path(nodes, cost)[name] - cost[name]

    def keys(self, s, seqs) -> tuple[dict, list, float]:
        """(seq_id -> latest start, demoted ones + LATE; decoding sequences; predicted decode step)."""
        self._learn(s)
        t = now(s)
        decoding = [q for q in s.running if not in_prefill(q)]
        step = self.model.decode_time(1.0, max(1, len(decoding)), sum(len(q) for q in decoding))
        key = {}
        for q in seqs:
            slo = slo_of(q)
            root = getattr(q, "dag_start", q.arrival_time) == q.arrival_time  # DAG nodes: judged at the root
            if q.seq_id not in self.warned and slo is not None and slo.kind is not Kind.LATENCY and root:
                self.warned.add(q.seq_id)
                alone = self.model.decode_time(1.0, 1, len(q))
                if self.latest_start(q, q.arrival_time, alone) < q.arrival_time:
                    log.warning("request %d cannot meet its %s SLO even alone; admitted, served after the others",
                                q.seq_id, slo.kind.value)
            ls = self.latest_start(q, t, step)
            if ls < t - step and slo is not None and slo.kind is not Kind.LATENCY:
                ls += LATE  # demoted: it can no longer earn its gain
            key[q.seq_id] = ls
        return key, decoding, step

    def schedule(self, s) -> Batch:
        key, decoding, step = self.keys(s, [*s.running, *s.waiting])
        horizon = now(s) + self.horizon_steps * step
        order = sorted([*s.running, *s.waiting], key=lambda q: key[q.seq_id])
        dec_ids = {q.seq_id for q in decoding}
        batch, left = Batch(), min(self.token_budget, s.max_num_batched_tokens)
        tbt = min((slo_of(q).tbt for q in decoding if slo_of(q) and slo_of(q).kind is Kind.LATENCY), default=None)
        for due_pass in (True, False):
            chosen = [q for q in order if (key[q.seq_id] <= horizon) == due_pass]
            dec = [q for q in chosen if q.seq_id in dec_ids][:s.max_num_seqs - len(batch.seqs)]
            for q in grow_decodes(s, dec):
                batch.add(q, 1)
                left -= 1
            for q in chosen:
                if left <= 0 or q.seq_id in dec_ids or q.finished:
                    continue
                if q.status.name == "WAITING":
                    if len(s.running) >= s.max_num_seqs or not s.admit(q):
                        continue
                n = min(left, len(q) - q.num_computed_tokens)
                if tbt is not None and batch.seqs:
                    n = self._fit(batch, q, n, tbt)
                if n > 0:
                    batch.add(q, n)
                    left -= n
        return self._unmix(s, batch, key, dec_ids)

    def _unmix(self, s, batch: Batch, key: dict, dec_ids: set) -> Batch:
        """Where the model says a mixed step costs more than its two halves run apart (padded attention),
        run only the more urgent half: the decodes, or a prefill step sized to end before the earliest
        decode's latest start (just enough slack given away)."""
        dec = [(q, n) for q, n in zip(batch.seqs, batch.num_new) if q.seq_id in dec_ids]
        pre = [(q, n) for q, n in zip(batch.seqs, batch.num_new) if q.seq_id not in dec_ids]
        if not dec or not pre:
            return batch
        d, p = Batch([q for q, _ in dec], [n for _, n in dec]), Batch([q for q, _ in pre], [n for _, n in pre])
        st = lambda b: self.model.step_time(items(b))
        if st(batch) <= st(d) + st(p):
            return batch
        first_dec = min(key[q.seq_id] for q, _ in dec)
        if first_dec <= min(key[q.seq_id] for q, _ in pre):
            return d
        slack, out = first_dec - now(s), Batch()
        for q, _ in pre:
            n = len(q) - q.num_computed_tokens
            while n > 16 and st(Batch(out.seqs + [q], out.num_new + [n])) > slack:
                n //= 2
            out.add(q, n)
            if st(out) > slack:
                break
        return out

    def _fit(self, batch: Batch, q, n: int, tbt: float) -> int:
        """Shrink a chunk so the step stays within the tightest TBT of the batch (at least 16 tokens)."""
        base = items(batch)
        while n > 16 and self.model.step_time(base + [(n, q.num_computed_tokens + n, False)]) > tbt:
            n //= 2
        return n


class TempoMuxPolicy(PDMuxPolicy):
    """Ours: Tempo's service-gain order on PD multiplexing's partitions. Prefill blocks serve the requests
    with the earliest latest-start time first (instead of the shortest prompt)."""

    name = "tempo_mux"

    def __init__(self, model: LatencyModel, tbt: float = 0.1, **kw):
        super().__init__(model, tbt=tbt, **kw)
        self.tempo = TempoPolicy(model)

    def prefill_order(self, s, cands):
        key, _, _ = self.tempo.keys(s, cands)
        return sorted(cands, key=lambda q: (key[q.seq_id], len(q) - q.num_computed_tokens))
