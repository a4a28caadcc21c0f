"""Paged attention in plain torch: new K/V go to cache slots, each sequence gathers its context by block table.

The same code runs on CPU and CUDA. A step carries T new tokens from B sequences (any mix of whole
prompts, prompt chunks and single decode tokens). Per group (the single-token rows, the multi-token
rows) queries are scattered into a padded [B, Q] layout, context K/V gathered into [B, L], and one
`scaled_dot_product_attention` call with a causal mask does the rest. Without a context (`ctx=None`)
the layer is plain causal attention over [B, L] (training).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(slots=True)
class AttentionGroup:
    """Sequences attended together in one padded [B, Q] query layout.

    tokens:        int64[Tg]   which of the step's T new tokens belong to the group (None: all T, in order)
    token_index:   int64[Tg]   position of each of them in the group's padded [B * Q] query layout
    context_slots: int64[B, L] cache slots of each sequence's whole context, new tokens included (0-padded)
    mask:          bool[B, 1, Q, L]  True where a query may attend (causal, within its own context)
    """

    tokens: torch.Tensor | None
    token_index: torch.Tensor
    context_slots: torch.Tensor
    mask: torch.Tensor


def _group(block_tables, starts, ends, block_size: int, device, tokens=None) -> tuple[AttentionGroup, torch.Tensor]:
    """The group of sequences where sequence b computes positions starts[b]..ends[b]-1 and attends to
    positions 0..ends[b]-1, and the cache slots of its new tokens (on the host)."""
    bsz, max_q, max_l = len(starts), max(e - s for s, e in zip(starts, ends)), max(ends)
    tables = torch.zeros(bsz, -(-max_l // block_size), dtype=torch.long)
    for b, t in enumerate(block_tables):
        tables[b, :len(t)] = torch.tensor(t[:tables.shape[1]], dtype=torch.long)
    kpos = torch.arange(max_l)
    slots = tables[:, kpos // block_size] * block_size + kpos % block_size      # [B, L]
    start, end = torch.tensor(starts), torch.tensor(ends)
    qpos = start[:, None] + torch.arange(max_q)[None, :]                           # [B, Q]
    valid = qpos < end[:, None]
    qpos = torch.where(valid, qpos, 0)  # padded queries look at position 0 only: no empty rows
    slots = torch.where(kpos[None, :] < end[:, None], slots, 0)
    rows = torch.arange(bsz)[:, None].expand(bsz, max_q)
    group = AttentionGroup(tokens=None if tokens is None else torch.tensor(tokens, dtype=torch.long, device=device),
                           token_index=(rows * max_q + torch.arange(max_q))[valid].to(device),
                           context_slots=slots.to(device),
                           mask=(kpos[None, None, :] <= qpos[:, :, None]).unsqueeze(1).to(device))
    return group, slots.gather(1, qpos)[valid]


@dataclass(slots=True)
class AttentionContext:
    """Where one step's T new tokens live in the paged cache (slot_mapping: int64[T], block_id * block_size
    + offset) and how they attend: single-token rows (decodes) form one group, multi-token rows (prompts,
    chunks) another, so a mixed step does not pad every decode to the chunk's length."""

    slot_mapping: torch.Tensor
    groups: list[AttentionGroup]

    @classmethod
    def build(cls, block_tables: list[list[int]], starts: list[int], ends: list[int], block_size: int,
              device: torch.device) -> "AttentionContext":
        """Sequence b computes positions starts[b]..ends[b]-1 and attends to positions 0..ends[b]-1."""
        single = [e - s == 1 for s, e in zip(starts, ends)]
        if all(single) or not any(single):
            group, slots = _group(block_tables, starts, ends, block_size, device)
            return cls(slot_mapping=slots.to(device), groups=[group])
        offsets = [0]
        for s, e in zip(starts, ends):
            offsets.append(offsets[-1] + e - s)
        slot_mapping, groups = torch.empty(offsets[-1], dtype=torch.long), []
        for kind in (True, False):
            rows = [b for b, one in enumerate(single) if one == kind]
            tokens = [t for b in rows for t in range(offsets[b], offsets[b + 1])]
            group, slots = _group([block_tables[b] for b in rows], [starts[b] for b in rows],
                                                [ends[b] for b in rows], block_size, device, tokens)
            slot_mapping[tokens] = slots
            groups.append(group)
        return cls(slot_mapping=slot_mapping.to(device), groups=groups)


class PagedAttention(nn.Module):
    """Attention over a paged KV cache. The ModelRunner sets `k_cache`, `v_cache`: [num_slots, KVH, D]."""

    def __init__(self, num_heads: int, num_kv_heads: int, head_dim: int, scale: float):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim, self.scale = num_heads, num_kv_heads, head_dim, scale
        self.k_cache = self.v_cache = torch.empty(0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                ctx: AttentionContext | None) -> torch.Tensor:
        """q: [T, H, D], k, v: [T, KVH, D] -> [T, H * D]; with ctx=None, q: [B, L, H, D] -> [B, L, H * D]."""
        gqa = self.num_heads // self.num_kv_heads
        if ctx is None:
            q, k, v = (x.transpose(1, 2) for x in (q, k, v))
            if gqa > 1:
                k, v = k.repeat_interleave(gqa, 1), v.repeat_interleave(gqa, 1)
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
            return out.transpose(1, 2).flatten(2)
        self.k_cache.index_copy_(0, ctx.slot_mapping, k)
        self.v_cache.index_copy_(0, ctx.slot_mapping, v)
        if len(ctx.groups) == 1 and ctx.groups[0].tokens is None:
            return self._attend(q, ctx.groups[0], gqa)
        out = q.new_empty(q.shape[0], self.num_heads * self.head_dim)
        for g in ctx.groups:
            out[g.tokens] = self._attend(q[g.tokens], g, gqa)
        return out

    def _attend(self, q: torch.Tensor, g: AttentionGroup, gqa: int) -> torch.Tensor:
        """q: [Tg, H, D] of one group -> [Tg, H * D]."""
        bsz, max_q = g.mask.shape[0], g.mask.shape[2]
        qp = q.new_zeros(bsz * max_q, self.num_heads, self.head_dim)
        qp[g.token_index] = q
        qp = qp.view(bsz, max_q, self.num_heads, self.head_dim).transpose(1, 2)   # [B, H, Q, D]
        kc = self.k_cache[g.context_slots].transpose(1, 2)                        # [B, KVH, L, D]
        vc = self.v_cache[g.context_slots].transpose(1, 2)
        if gqa > 1:
            kc, vc = kc.repeat_interleave(gqa, 1), vc.repeat_interleave(gqa, 1)
        out = F.scaled_dot_product_attention(qp, kc, vc, attn_mask=g.mask, scale=self.scale)
        return out.transpose(1, 2).reshape(bsz * max_q, -1)[g.token_index]
