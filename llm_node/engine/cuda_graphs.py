"""CUDA graphs of decode steps: one graph launch instead of ~50 kernel launches per layer.

A small model's decode step on a GPU is bound by Python and kernel launches, not by the GPU (the tiny
models here: a 350 M Llama's step is ~37 ms eager on an H100 for ~0.3 ms of weight reads). Each graph is
captured once per (batch bucket, context bucket): batch sizes 1, 2, 4, ... up to max_num_seqs, context
lengths 256, 384, 512, 768, ... up to the longest sequence (the graph gathers its whole context bucket). A step whose sequences all compute one token runs in
the smallest graph that holds it; others (prefill, chunks, mixed steps) run eagerly.

Inputs live in one static int64 buffer [B, 3 + L] (token id, position, cache slot, then the L context
slots), filled by one host-to-device copy per step; the attention mask is computed inside the graph
from the positions. Padded rows use a scratch slot past the end of the KV cache, so they never touch a
sequence's blocks. Outputs (hidden states and float32 logits of every row) are static too: `run` hands
out copies and waits for them before it lets the next step (from any thread) refill the inputs.
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
COLS = 3  # token id, position, cache slot; the context slots follow


def buckets(top: int, first: int = 1, half_steps: bool = False) -> list[int]:
    """first, 2 first, 4 first, ... below `top`, then `top` itself (the last bucket holds the largest
    case); with half_steps also 1.5 first, 3 first, ... (no step wastes more than a third)."""
    out, b = [], first
    while b < top:
        out += [b, b * 3 // 2] if half_steps else [b]
        b *= 2
    return sorted({x for x in out if x < top} | {top})


class DecodeGraphs:
    """Captured decode steps of `model` over a KV cache of `num_slots` slots (+ one scratch slot at index
    `num_slots`). `run(batch)` returns the runner's (rows, hidden, logits), or None where no graph fits."""

    def __init__(self, model, num_slots: int, block_size: int, max_batch: int, max_context: int,
                 device: torch.device, min_context: int = MIN_CONTEXT):
        self.model, self.block_size, self.device = model, block_size, device
        self.scratch = num_slots
        self.batches = buckets(max_batch)
        self.contexts = buckets(max_context, min_context, True) if max_context > min_context else [max_context]
        bmax, lmax = self.batches[-1], self.contexts[-1]
        self.inp = torch.zeros(bmax, COLS + lmax, dtype=torch.long, device=device)
        self.rows = torch.arange(bmax, device=device)
        self.staging_pinned = torch.zeros(bmax, COLS + lmax, dtype=torch.long, pin_memory=device.type == "cuda")
        self.staging = self.staging_pinned.numpy()  # the same memory
        self.kpos = np.arange(lmax, dtype=np.int64)
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        self.lock = threading.Lock()
        self.failed: set[int] = set()  # streams a replay failed on (their steps run eagerly)
        self.replays = 0

    def _forward(self, b: int, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.inp[:b]
        ids, pos, slot, ctx_slots = x[:, 0], x[:, 1], x[:, 2], x[:, COLS:COLS + l]
        kpos = torch.arange(l, device=self.device)
        mask = (kpos[None, :] <= pos[:, None])[:, None, None, :]
        ctx = AttentionContext(slot_mapping=slot, groups=[AttentionGroup(None, self.rows[:b], ctx_slots, mask)])
        hidden = self.model(ids, pos, ctx)
        return hidden, self.model.compute_logits(hidden).float()

    def _pad(self, b: int) -> None:
        """Every row of the first b a padded row: position 0, writes and reads the scratch slot only."""
        self.inp[:b, :COLS] = torch.tensor([0, 0, self.scratch], device=self.device)
        self.inp[:b, COLS:] = self.scratch

    @torch.no_grad()
    def capture(self) -> float:
        """Capture every bucket, largest first, into one memory pool; returns the seconds it took."""
        t, pool = time.perf_counter(), torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for b in reversed(self.batches):
                for l in reversed(self.contexts):
                    self._pad(b)
                    self._forward(b, l)  # warm-up: kernels picked, workspaces allocated outside the graph
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g, pool=pool, stream=side, capture_error_mode="thread_local"):
                        hidden, logits = self._forward(b, l)
                    self.graphs[b, l] = (g, hidden, logits)
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t
        log.info("CUDA graphs: %d decode steps captured (batch %s, context %s) in %.1f s", len(self.graphs),
                 self.batches, self.contexts, seconds)
        return seconds

    def pick(self, batch) -> tuple[int, int] | None:
        """The (batch, context) bucket of a step, or None if it is no decode step or too large."""
        if any(n != 1 for n in batch.num_new) or len(batch.seqs) > self.batches[-1]:
            return None
        longest = max(s.num_computed_tokens for s in batch.seqs) + 1
        if longest > self.contexts[-1]:
            return None
        return (next(b for b in self.batches if b >= len(batch.seqs)),
                next(l for l in self.contexts if l >= longest))

    def host_inputs(self, batch, b: int, l: int) -> np.ndarray:
        """The [b, 3 + l] input rows of a step, padded rows included, written into the pinned staging buffer."""
        bs = self.block_size
        x = self.staging[:b, :COLS + l]
        x[:, 0:2], x[:, 2:] = 0, self.scratch
        for i, seq in enumerate(batch.seqs):
            p = seq.num_computed_tokens
            kpos = self.kpos[: p + 1]
            slots = np.asarray(seq.block_table[: p // bs + 1], dtype=np.int64)[kpos // bs] * bs + kpos % bs
            x[i, :COLS] = seq.token_ids[p], p, slots[p]
            x[i, COLS: COLS + p + 1] = slots
            x[i, COLS + p + 1:] = 0  # masked out
        return x

    @torch.no_grad()
    def run(self, batch) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
        """A decode step through its graph (without captured graphs, e.g. on the CPU in tests, through the
        same buffers eagerly); None if the step has no bucket or graphs failed on this stream."""
        key = self.pick(batch)
        cuda = self.device.type == "cuda"
        stream = torch.cuda.current_stream(self.device) if cuda else None
        if key is None or (cuda and stream.stream_id in self.failed):
            return None
        b, l = key
        n = len(batch.seqs)
        with self.lock:  # one step at a time owns the staging and static buffers, until its outputs are out
            self.host_inputs(batch, b, l)
            self.inp[:b, :COLS + l].copy_(self.staging_pinned[:b, :COLS + l], non_blocking=cuda)
            if key not in self.graphs:
                hidden, logits = self._forward(b, l)
            else:
                g, hidden, logits = self.graphs[key]
                try:
                    g.replay()
                except RuntimeError as e:  # e.g. a stream of another context: it runs eagerly from now on
                    log.warning("CUDA graph replay failed on stream %d (%s): its decode steps run eagerly",
                                stream.stream_id, e)
                    self.failed.add(stream.stream_id)
                    return None
                self.replays += 1
            hidden, logits = hidden[:n].clone(), logits[:n].clone()
            if cuda:
                stream.synchronize()
        rows = [i for i, s in enumerate(batch.seqs) if s.num_computed_tokens + 1 == len(s)]
        if len(rows) < n:
            idx = torch.tensor(rows, device=self.device)
            hidden, logits = hidden[idx], logits[idx]
        return rows, hidden, logits
