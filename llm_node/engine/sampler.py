"""Sampling: greedy, temperature, top-k, top-p; each request draws from its own seeded generator."""
from __future__ import annotations

import torch

from llm_node.engine.sequence import Sequence


def sample(logits: torch.Tensor, seqs: list[Sequence], default: torch.Generator) -> list[int]:
    """logits: float32[S, V] (already processed), one row per sequence -> S token ids."""
    out = logits.argmax(-1).tolist()
    rows = [i for i, s in enumerate(seqs) if not s.params.greedy]
    if not rows:
        return out
    ps = [seqs[i].params for i in rows]
    x = logits[rows] / torch.tensor([p.temperature for p in ps], device=logits.device)[:, None]
    top_k = [p.top_k for p in ps]
    if any(top_k):
        k = torch.tensor([k or x.shape[-1] for k in top_k], device=x.device).clamp(max=x.shape[-1])
        kth = x.sort(-1, descending=True).values.gather(1, (k - 1)[:, None])
        x = x.masked_fill(x < kth, float("-inf"))
    top_p = torch.tensor([p.top_p for p in ps], device=x.device)
    if (top_p < 1).any():
        sorted_x, order = x.sort(-1, descending=True)
        probs = sorted_x.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p[:, None]  # keeps the smallest prefix with mass >= top_p
        x = x.scatter(1, order, sorted_x.masked_fill(drop, float("-inf")))
    probs = x.softmax(-1)
    for j, i in enumerate(rows):
        gen = seqs[i].generator or default
        out[i] = int(torch.multinomial(probs[j], 1, generator=gen))
    return out
