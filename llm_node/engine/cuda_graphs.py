"""CUDA graphs of engine steps: one graph launch instead of ~50 kernel launches per layer.

A small model's step on a GPU is bound by Python and kernel launches, not by the GPU (a 350 M Llama's
decode step was 22-37 ms eager on an H100 for ~0.3 ms of weight reads, a 512-token prefill 21-26 ms for
~1 ms of work). Two sets of graphs, each captured once per bucket at start:

- `DecodeGraphs`: steps whose sequences all compute one token, per (batch, context) bucket: batch sizes
  1, 2, 4, ... up to max_num_seqs, contexts 256, 384, 512, 768, ... up to the longest sequence (the graph
  gathers its whole context bucket). Inputs: one int64 buffer [B, 3 + L] (token id, position, cache slot,
  then the L context slots).
- `PrefillGraphs`: one sequence computing Q > 1 tokens (a prompt, or a chunk after cached context), per
  (query, context) bucket: Q 16, 32, ... up to max_num_batched_tokens, contexts as above. Inputs: one
  int64 buffer [1 + 3 Q + L] (index of the last real token, then id, position, slot per token, then the
  context slots); only the last token's hidden state and logits come out.

Other steps (mixed, several prompts, longer contexts) run eagerly. Each set fills its inputs with one
host-to-device copy per step; the attention mask is computed inside the graph from the positions.
Padded rows use a scratch slot past the end of the KV cache, so they never touch a sequence's blocks.
Outputs are static too: `run` hands out copies and waits for them before it lets the next step (from any
thread) refill the inputs. The two sets have their own buffers, locks and memory pools, so a prefill
lane and a decode lane (PD multiplexing) replay at the same time.
"""
from __future__ import annotations

import logging
import threading
import time

import numpy as np
import torch

from llm_node.layers.attention import AttentionContext, AttentionGroup

log = logging.getLogger(__name__)
MIN_CONTEXT = 256
MIN_QUERY = 16
COLS = 3  # token id, position, cache slot


def buckets(top: int, first: int = 1, half_steps: bool = False) -> list[int]:
    """first, 2 first, 4 first, ... below `top`, then `top` itself (the last bucket holds the largest
    case); with half_steps also 1.5 first, 3 first, ... (no step wastes more than a third)."""
    out, b = [], first
    while b < top:
        out += [b, b * 3 // 2] if half_steps else [b]
        b *= 2
    return sorted({x for x in out if x < top} | {top})


def context_buckets(max_context: int, min_context: int) -> list[int]:
    return buckets(max_context, min_context, True) if max_context > min_context else [max_context]


def slots_of(seq, end: int, block_size: int, kpos: np.ndarray) -> np.ndarray:
    """Cache slots of positions 0..end-1 of a sequence."""
    k = kpos[:end]
    return np.asarray(seq.block_table[: (end - 1) // block_size + 1], dtype=np.int64)[k // block_size] \
        * block_size + k % block_size


class _Graphs:
    """Buckets of captured steps over one static input buffer; subclasses say what a bucket computes."""

    kind = ""

    def __init__(self, model, num_slots: int, block_size: int, size: int, device: torch.device):
        self.model, self.block_size, self.device = model, block_size, device
        self.scratch = num_slots
        self.inp = torch.zeros(size, dtype=torch.long, device=device)
        self.staging_pinned = torch.zeros(size, dtype=torch.long, pin_memory=device.type == "cuda")
        self.staging = self.staging_pinned.numpy()  # the same memory
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.lock = threading.Lock()
        self.failed: set[int] = set()  # streams a replay failed on (their steps run eagerly)
        self.replays = 0

    # what a subclass provides
    def keys(self) -> list[tuple[int, int]]: ...
    def pick(self, batch) -> tuple[int, int] | None: ...
    def fill(self, batch, key) -> int: ...           # writes staging, returns how many words to copy
    def pad(self, key) -> None: ...                  # inputs that touch the scratch slot only
    def forward(self, key) -> tuple[torch.Tensor, torch.Tensor]: ...
    def outputs(self, batch) -> int: ...             # how many output rows are real

    def attend(self, ids, pos, slot, ctx_slots, rows) -> torch.Tensor:
        """The model's hidden states on static views: ctx_slots [B, L] is B sequences of one query each
        (decode), [1, L] one sequence of len(rows) queries (prefill; B = 1 reads the same either way).
        The causal mask (each query sees the positions up to its own) is computed in the graph."""
        kpos = torch.arange(ctx_slots.shape[-1], device=self.device)
        mask = kpos[None, :] <= pos[:, None]                                    # [queries, L]
        mask = mask[None, None] if ctx_slots.shape[0] == 1 else mask[:, None, None, :]
        ctx = AttentionContext(slot_mapping=slot, groups=[AttentionGroup(None, rows, ctx_slots, mask)])
        return self.model(ids, pos, ctx)

    @torch.no_grad()
    def capture(self) -> float:
        """Capture every bucket, largest first, into one memory pool; returns the seconds it took."""
        t, pool = time.perf_counter(), torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for key in self.keys():
                self.pad(key)
                self.forward(key)  # warm-up: kernels picked, workspaces allocated outside the graph
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g, pool=pool, stream=side, capture_error_mode="thread_local"):
                    hidden, logits = self.forward(key)
                self.graphs[key] = (g, hidden, logits)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t
        log.info("CUDA graphs: %d %s steps captured in %.1f s", len(self.graphs), self.kind, seconds)
        return seconds

    @torch.no_grad()
    def run(self, batch) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
        """A step through its graph (without captured graphs, e.g. on the CPU in tests, through the same
        buffers eagerly); None if the step has no bucket or graphs failed on this stream."""
        key = self.pick(batch)
        cuda = self.device.type == "cuda"
        stream = torch.cuda.current_stream(self.device) if cuda else None
        if key is None or (cuda and stream.stream_id in self.failed):
            return None
        n = self.outputs(batch)
        with self.lock:  # one step at a time owns the staging and static buffers, until its outputs are out
            words = self.fill(batch, key)
            self.inp[:words].copy_(self.staging_pinned[:words], non_blocking=cuda)
            if key not in self.graphs:
                hidden, logits = self.forward(key)
            else:
                g, hidden, logits = self.graphs[key]
                try:
                    g.replay()
                except RuntimeError as e:  # e.g. a stream of another context: it runs eagerly from now on
                    log.warning("CUDA graph replay failed on stream %d (%s): its %s steps run eagerly",
                                stream.stream_id, e, self.kind)
                    self.failed.add(stream.stream_id)
                    return None
                self.replays += 1
            hidden, logits = hidden[:n].clone(), logits[:n].clone()
            if cuda:
                stream.synchronize()
        rows = [i for i, s in enumerate(batch.seqs) if s.num_computed_tokens + batch.num_new[i] == len(s)]
        if len(rows) < n:
            idx = torch.tensor(rows, device=self.device, dtype=torch.long)
            hidden, logits = hidden[idx], logits[idx]
        return rows, hidden, logits


class DecodeGraphs(_Graphs):
    """Decode steps of `model` over a KV cache of `num_slots` slots (+ one scratch slot at index `num_slots`)."""

    kind = "decode"

    def __init__(self, model, num_slots: int, block_size: int, max_batch: int, max_context: int,
                 device: torch.device, min_context: int = MIN_CONTEXT):
        self.batches = buckets(max_batch)
        self.contexts = context_buckets(max_context, min_context)
        self.width = COLS + self.contexts[-1]
        super().__init__(model, num_slots, block_size, self.batches[-1] * self.width, device)
        self.rows = torch.arange(self.batches[-1], device=device)
        self.kpos = np.arange(self.contexts[-1], dtype=np.int64)

    def keys(self):
        return [(b, l) for b in reversed(self.batches) for l in reversed(self.contexts)]

    def _view(self, buf, b: int, l: int):
        return buf[: b * self.width].reshape(b, self.width)[:, : COLS + l]

    def forward(self, key):
        b, l = key
        x = self._view(self.inp, b, l)
        hidden = self.attend(x[:, 0], x[:, 1], x[:, 2], x[:, COLS:], self.rows[:b])
        return hidden, self.model.compute_logits(hidden).float()

    def pad(self, key):
        """Every row a padded row: position 0, writes and reads the scratch slot only."""
        x = self._view(self.inp, *key)
        x[:, :COLS] = torch.tensor([0, 0, self.scratch], device=self.device)
        x[:, COLS:] = self.scratch

    def pick(self, batch):
        """The (batch, context) bucket of a step, or None if it is no decode step or too large."""
        if any(n != 1 for n in batch.num_new) or len(batch.seqs) > self.batches[-1]:
            return None
        longest = max(s.num_computed_tokens for s in batch.seqs) + 1
        if longest > self.contexts[-1]:
            return None
        return (next(b for b in self.batches if b >= len(batch.seqs)),
                next(l for l in self.contexts if l >= longest))

    def fill(self, batch, key):
        """The [b, 3 + l] input rows of a step, padded rows included, in the staging buffer."""
        b, l = key
        x = self._view(self.staging, b, l)
        x[:, 0:2], x[:, 2:] = 0, self.scratch
        for i, seq in enumerate(batch.seqs):
            p = seq.num_computed_tokens
            slots = slots_of(seq, p + 1, self.block_size, self.kpos)
            x[i, :COLS] = seq.token_ids[p], p, slots[p]
            x[i, COLS: COLS + p + 1] = slots
            x[i, COLS + p + 1:] = 0  # masked out
        return b * self.width

    def outputs(self, batch):
        return len(batch.seqs)


class PrefillGraphs(_Graphs):
    """One sequence computing Q > 1 tokens; only its last token's hidden state and logits are produced."""

    kind = "prefill"

    def __init__(self, model, num_slots: int, block_size: int, max_tokens: int, max_context: int,
                 device: torch.device, min_query: int = MIN_QUERY, min_context: int = MIN_CONTEXT):
        self.contexts = context_buckets(max_context, min_context)
        self.queries = buckets(min(max_tokens, self.contexts[-1]), min_query)
        self.qmax, self.lmax = self.queries[-1], self.contexts[-1]
        super().__init__(model, num_slots, block_size, 1 + COLS * self.qmax + self.lmax, device)
        self.rows = torch.arange(self.qmax, device=device)
        self.kpos = np.arange(self.lmax, dtype=np.int64)

    def keys(self):
        return [(q, l) for q in reversed(self.queries) for l in reversed(self.contexts) if l >= q]

    def _views(self, buf, q: int, l: int):
        tok = buf[1: 1 + COLS * self.qmax].reshape(self.qmax, COLS)[:q]
        return buf[:1], tok, buf[1 + COLS * self.qmax: 1 + COLS * self.qmax + l]

    def forward(self, key):
        q, l = key
        last, tok, ctx = self._views(self.inp, q, l)
        hidden = self.attend(tok[:, 0], tok[:, 1], tok[:, 2], ctx[None, :], self.rows[:q])[last]
        return hidden, self.model.compute_logits(hidden).float()

    def pad(self, key):
        last, tok, ctx = self._views(self.inp, *key)
        last.zero_()
        tok[:] = torch.tensor([0, 0, self.scratch], device=self.device)
        ctx[:] = self.scratch

    def pick(self, batch):
        """The (query, context) bucket of a one-sequence step of more than one token, or None."""
        if len(batch.seqs) != 1 or batch.num_new[0] < 2:
            return None
        n, end = batch.num_new[0], batch.seqs[0].num_computed_tokens + batch.num_new[0]
        if n > self.qmax or end > self.lmax:
            return None
        q = next(q for q in self.queries if q >= n)
        return q, next(l for l in self.contexts if l >= max(end, q))

    def fill(self, batch, key):
        """Last-token index, the Q token rows (padded rows: position 0, scratch slot), the L context slots."""
        q, l = key
        seq, n = batch.seqs[0], batch.num_new[0]
        start, end = seq.num_computed_tokens, seq.num_computed_tokens + n
        last, tok, ctx = self._views(self.staging, q, l)
        slots = slots_of(seq, end, self.block_size, self.kpos)
        last[0] = n - 1
        tok[:n, 0], tok[:n, 1], tok[:n, 2] = seq.token_ids[start:end], self.kpos[start:end], slots[start:end]
        tok[n:] = (0, 0, self.scratch)
        ctx[:end], ctx[end:] = slots, 0  # padded rows see position 0 (slot of position 0), the rest is masked
        return 1 + COLS * self.qmax + l

    def outputs(self, batch):
        return 1
