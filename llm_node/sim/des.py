"""Discrete-event simulator of one LLM node: the engine's real Scheduler, BlockManager, Sequences and the
very policy objects the engine runs, with the model forward replaced by the fitted latency model.

Events are arrivals and lane completions (plus wake-ups a policy asks for). Whenever a lane is idle the
policy is asked for work; a step lasts `LatencyModel.step_time(batch, share, lane)`. Sequences stop at
their drawn output length by "sampling" EOS there, so schedulers cannot read lengths from max_tokens.
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

import numpy as np

from llm_node.engine.block_manager import BlockManager
from llm_node.engine.scheduler import Scheduler
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.errors import RequestError
from llm_node.sched.base import Work, as_lane_policy, items
from llm_node.sched.latency import LatencyModel
from llm_node.sim.workload import Request

EOS = 0
VOCAB = 50000


class SimulationError(RuntimeError):
    """The simulated node stalled: work left, nothing running, nothing scheduled."""


@dataclass(slots=True)
class SimConfig:
    num_kv_blocks: int = 4096
    block_size: int = 64
    max_num_seqs: int = 128
    max_num_batched_tokens: int = 8192
    max_tokens: int = 4096
    max_model_len: int = 1 << 16
    seed: int = 0


@dataclass(slots=True)
class Record:
    """One finished (or unfinished) request as the metrics see it."""

    seq: Sequence
    req: Request
    dag_id: int | None = None


@dataclass(slots=True)
class SimResult:
    records: list[Record]
    dags: dict[int, tuple[Request, float, list[Sequence]]]
    span: float
    end: float
    steps: dict[str, int] = field(default_factory=dict)
    busy_s: dict[str, float] = field(default_factory=dict)


class Simulator:
    def __init__(self, model: LatencyModel, policy, config: SimConfig | None = None):
        self.model, self.policy, self.cfg = model, as_lane_policy(policy), config or SimConfig()
        c = self.cfg
        self.t = 0.0  # the simulated clock: the scheduler stamps token and finish times with it
        self.s = Scheduler(BlockManager(c.num_kv_blocks, c.block_size), c.max_num_seqs, c.max_num_batched_tokens,
                           c.max_model_len, (EOS,), None, clock=lambda: self.t)
        self.rng = np.random.default_rng(c.seed)
        self.events: list = []
        self.ids = itertools.count()

    def push(self, t: float, kind: str, payload=None) -> None:
        heapq.heappush(self.events, (t, next(self.ids), kind, payload))

    def _tokens(self, n: int) -> list[int]:
        return self.rng.integers(3, VOCAB, size=n).tolist()

    def _start(self, req: Request, prompt: list[int], output_len: int, **attrs) -> Sequence:
        if len(prompt) + output_len + 1 > self.cfg.max_model_len:
            raise RequestError(f"request of {len(prompt)} + {output_len} tokens exceeds the simulated context")
        seq = Sequence(prompt, SamplingParams(temperature=0, max_tokens=self.cfg.max_tokens), arrival=self.t)
        seq.slo, seq.app, seq.sim_output_len = req.slo, req.app, output_len
        for k, v in attrs.items():
            setattr(seq, k, v)
        self.s.add(seq)
        return seq

    def run(self, workload: list[Request]) -> SimResult:
        records, dags, steps, busy_s = [], {}, {}, {}
        lanes = self.policy.lanes
        busy: dict[str, Work | None] = {lane: None for lane in lanes}
        for i, req in enumerate(workload):
            self.push(req.arrival, "arrive", (i, req))
        waking: set[float] = set()
        while self.events:
            t, _, kind, payload = heapq.heappop(self.events)
            self.t = t
            if kind == "arrive":
                i, req = payload
                if req.dag is not None:
                    dags[i] = (req, t, [])
                    for node in req.dag:
                        if not node.deps:
                            self._release(records, dags, i, node)
                else:
                    turns = req.turns or [(req.prompt_len, req.output_len)]
                    seq = self._start(req, self._tokens(turns[0][0]), turns[0][1], turn=0)
                    records.append(Record(seq, req))
            elif kind == "turn":
                rec, prev = payload
                k = prev.turn + 1
                user, out = rec.req.turns[k]
                seq = self._start(rec.req, list(prev.token_ids) + self._tokens(user), out, turn=k)
                records.append(Record(seq, rec.req))
            elif kind == "done":
                lane, work = payload
                busy[lane] = None
                sampled = {}
                for seq, n in zip(work.batch.seqs, work.batch.num_new):
                    if seq.num_computed_tokens + n == len(seq):
                        last = len(seq.completion_ids) + 1 >= seq.sim_output_len
                        sampled[seq.seq_id] = EOS if last else int(3 + (seq.seq_id * 7919 + len(seq)) % VOCAB)
                finished = self.s.postprocess(work.batch, sampled)
                self.policy.complete(self.s, work, finished)
                for seq in finished:
                    self._on_finish(records, dags, seq)
            elif kind == "wake":
                waking.discard(t)
            for lane in lanes:
                if busy[lane] is None:
                    w = self.policy.dispatch(self.s, lane, busy)
                    if isinstance(w, Work):
                        dur = self.model.step_time(items(w.batch), w.share, lane) + w.extra_s
                        busy[lane] = w
                        steps[lane] = steps.get(lane, 0) + 1
                        busy_s[lane] = busy_s.get(lane, 0.0) + dur
                        self.push(t + dur, "done", (lane, w))
                    elif w is not None and w > t and w not in waking:
                        waking.add(w)
                        self.push(w, "wake")
            if not self.events and self.s.has_unfinished():
                name = getattr(self.policy, "name", type(self.policy).__name__)
                raise SimulationError(f"policy {name} stalled at t={t:.3f} s with {len(self.s.waiting)} waiting "
                                      f"and {len(self.s.running)} running requests")
        arr = [r.arrival for r in workload]
        return SimResult(records, dags, max(arr) - min(arr) if len(arr) > 1 else 1.0, self.t, steps, busy_s)

    def _release(self, records, dags, i, node) -> None:
        req, start, seqs = dags[i]
        seq = self._start(req, self._tokens(max(1, node.prompt_len)), max(1, node.output_len), dag_start=start,
                          dag_nodes=req.dag, dag_node=node.name, dag_id=i)
        seqs.append(seq)
        records.append(Record(seq, req, i))

    def _on_finish(self, records, dags, seq) -> None:
        dag_id = getattr(seq, "dag_id", None)
        if dag_id is not None:
            req, _, seqs = dags[dag_id]
            done = {q.dag_node for q in seqs if q.finished}
            started = {q.dag_node for q in seqs}
            for node in req.dag:
                if node.name not in started and all(d in done for d in node.deps):
                    self._release(records, dags, dag_id, node)
            return
        rec = next((r for r in reversed(records) if r.seq is seq), None)
        if rec is not None and rec.req.turns and seq.turn + 1 < len(rec.req.turns):
            self.push(self.t + rec.req.think_s, "turn", (rec, seq))
