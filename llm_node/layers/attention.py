"""Paged attention in plain torch: new K/V go to cache slots, each sequence gathers its context by block table.

The same code runs on CPU and CUDA. A step carries T new tokens from B sequences (any mix of whole
prompts, prompt chunks and single decode tokens). Queries are scattered into a padded [B, Q] layout,
context K/V gathered into [B, L], and one `scaled_dot_product_attention` call with a causal mask does
the rest. Without a context (`ctx=None`) the layer is plain causal attention over [B, L] (training).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(slots=True)
class AttentionContext:
    """Where one step's new tokens live in the paged cache and what each of them sees.

    slot_mapping:  int64[T]     cache slot (block_id * block_size + offset) of each new token
    token_index:   int64[T]     position of each new token in the padded [B * Q] query layout
    context_slots: int64[B, L]  cache slots of each sequence's whole context, new tokens included (0-padded)
    mask:          bool[B, 1, Q, L]  True where a query may attend (causal, within its own context)
    """

    slot_mapping: torch.Tensor
    token_index: torch.Tensor
    context_slots: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, block_tables: list[list[int]], starts: list[int], ends: list[int], block_size: int,
              device: torch.device) -> "AttentionContext":
        """Sequence b computes positions starts[b]..ends[b]-1 and attends to positions 0..ends[b]-1."""
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
        return cls(slot_mapping=slots.gather(1, qpos)[valid].to(device),
                   token_index=(rows * max_q + torch.arange(max_q))[valid].to(device),
                   context_slots=slots.to(device),
                   mask=(kpos[None, None, :] <= qpos[:, :, None]).unsqueeze(1).to(device))


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
        bsz, max_q = ctx.mask.shape[0], ctx.mask.shape[2]
        qp = q.new_zeros(bsz * max_q, self.num_heads, self.head_dim)
        qp[ctx.token_index] = q
        qp = qp.view(bsz, max_q, self.num_heads, self.head_dim).transpose(1, 2)   # [B, H, Q, D]
        kc = self.k_cache[ctx.context_slots].transpose(1, 2)                      # [B, KVH, L, D]
        vc = self.v_cache[ctx.context_slots].transpose(1, 2)
        if gqa > 1:
            kc, vc = kc.repeat_interleave(gqa, 1), vc.repeat_interleave(gqa, 1)
        out = F.scaled_dot_product_attention(qp, kc, vc, attn_mask=ctx.mask, scale=self.scale)
        return out.transpose(1, 2).reshape(bsz * max_q, -1)[ctx.token_index]
