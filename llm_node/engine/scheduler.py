"""Continuous batching: each step the policy picks which sequences run and how many new tokens each computes.

A step may mix whole prompts, prompt chunks and decode tokens; the model runner handles any mix. The
policy decides; the Scheduler owns the queues and the block manager and applies the step's results.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from llm_node.engine.block_manager import BlockManager
from llm_node.engine.sequence import Sequence, Status


@dataclass(slots=True)
class Batch:
    """One step: seqs[i] computes its tokens num_computed_tokens .. num_computed_tokens + num_new[i] - 1."""

    seqs: list[Sequence] = field(default_factory=list)
    num_new: list[int] = field(default_factory=list)

    def add(self, seq: Sequence, n: int) -> None:
        self.seqs.append(seq)
        self.num_new.append(n)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new)

    @property
    def is_prefill(self) -> bool:
        return any(n > 1 or s.num_computed_tokens < s.num_prompt_tokens for s, n in zip(self.seqs, self.num_new))


class SchedulerPolicy:
    """Decides what runs in the next step. Subclasses (FCFS, chunked prefill, PD multiplexing, SLO-aware)
    use the Scheduler's queues and its `admit` / `preempt` / `grow` helpers."""

    def schedule(self, s: "Scheduler") -> Batch:
        raise NotImplementedError


class FCFSPolicy(SchedulerPolicy):
    """vLLM v0 / nano-vllm: admit waiting prompts in arrival order while the token budget allows (a prefill
    step), otherwise decode every running sequence, preempting the newest when the KV cache is full. The
    baseline every other scheduler is measured against."""

    name = "fcfs"

    def schedule(self, s: "Scheduler") -> Batch:
        batch = Batch()
        while s.waiting and len(s.running) < s.max_num_seqs:
            seq = s.waiting[0]
            if batch.seqs and batch.num_tokens + len(seq) > s.max_num_batched_tokens or not s.admit(seq):
                break
            batch.add(seq, len(seq) - seq.num_computed_tokens)
        if batch.seqs:
            return batch
        for q in grow_decodes(s, list(s.running)):
            batch.add(q, 1)
        return batch


def grow_decodes(s: "Scheduler", seqs: list[Sequence], busy_ids: set[int] = frozenset()) -> list[Sequence]:
    """Reserve a slot for one more token of each decode, preempting the newest idle running sequences when
    the cache is full (as vLLM does). Returns the sequences that got their slot, in order."""
    out, pending = [], list(seqs)
    while pending:
        seq = pending.pop(0)
        if seq.status is not Status.RUNNING:
            continue
        while not s.grow(seq, len(seq)):
            victims = [v for v in reversed(s.running) if v is not seq and v.seq_id not in busy_ids
                       and v not in out]
            if not victims:
                s.preempt(seq)
                break
            s.preempt(victims[0])
            if victims[0] in pending:
                pending.remove(victims[0])
        else:
            out.append(seq)
    return out


class Scheduler:
    """Waiting and running queues over one BlockManager; the policy picks each step's Batch and
    `postprocess` applies its results (computed tokens, sampled tokens, stop conditions, freeing).
    `clock` stamps token and finish times (the simulator passes its simulated time)."""

    def __init__(self, block_manager: BlockManager, max_num_seqs: int, max_num_batched_tokens: int,
                 max_model_len: int, eos_token_ids: tuple[int, ...], policy: SchedulerPolicy | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        self.bm, self.clock = block_manager, clock
        self.max_num_seqs, self.max_num_batched_tokens = max_num_seqs, max_num_batched_tokens
        self.max_model_len, self.eos_token_ids = max_model_len, set(eos_token_ids)
        self.policy = policy or FCFSPolicy()
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []

    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def schedule(self) -> Batch:
        return self.policy.schedule(self)

    def admit(self, seq: Sequence) -> bool:
        """Move a waiting sequence (any, not only the first) to running with blocks for all its tokens;
        False, and the queues unchanged, if blocks are short."""
        assert seq.status is Status.WAITING
        if not self.bm.allocate(seq):
            return False
        if self.waiting[0] is seq:
            self.waiting.popleft()
        else:
            self.waiting.remove(seq)
        seq.status = Status.RUNNING
        self.running.append(seq)
        return True

    def grow(self, seq: Sequence, num_tokens: int) -> bool:
        return self.bm.grow(seq, num_tokens)

    def preempt(self, seq: Sequence) -> None:
        """Free a running sequence's blocks and requeue it first; it is recomputed from its tokens later."""
        self.running.remove(seq)
        self.bm.free(seq)
        seq.status = Status.WAITING
        seq.num_preemptions += 1
        self.waiting.appendleft(seq)

    def abort(self, seq: Sequence) -> None:
        if seq.finished:
            return
        (self.running if seq.status is Status.RUNNING else self.waiting).remove(seq)
        self._finish(seq, "abort")

    def postprocess(self, batch: Batch, sampled: dict[int, int]) -> list[Sequence]:
        """Account computed tokens, append sampled ones (seq_id -> token), finish; returns finished seqs."""
        now, done = self.clock(), []
        for seq, n in zip(batch.seqs, batch.num_new):
            seq.num_computed_tokens += n
            self.bm.commit(seq)
            if seq.seq_id not in sampled:
                continue
            token = sampled[seq.seq_id]
            seq.token_ids.append(token)
            seq.token_times.append(now)
            p = seq.params
            if token in p.stop_token_ids or (token in self.eos_token_ids and not p.ignore_eos):
                self._finish(seq, "stop")
            elif len(seq) - seq.num_prompt_tokens >= p.max_tokens or len(seq) >= self.max_model_len:
                self._finish(seq, "length")
            if seq.finished:
                done.append(seq)
        return done

    def _finish(self, seq: Sequence, reason: str) -> None:
        if seq.status is Status.RUNNING and seq in self.running:
            self.running.remove(seq)
        self.bm.free(seq)
        seq.status, seq.finish_reason, seq.finish_time = Status.FINISHED, reason, self.clock()
