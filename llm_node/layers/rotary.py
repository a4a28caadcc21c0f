"""Rotary position embedding in the rotate-half layout of Hugging Face; "default", "linear" and "llama3" types."""
from __future__ import annotations

import math

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Rotates q and k by their positions; cos/sin tables are float32 and computed once."""

    def __init__(self, head_dim: int, max_position: int, theta: float, scaling: dict | None = None):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        if scaling:
            inv_freq = _scaled(inv_freq, scaling)
        freqs = torch.arange(max_position, dtype=torch.float32)[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor):
        """positions: int64[...]; q: [..., H, D], k: [..., KVH, D] -> rotated q, k."""
        cos = self.cos[positions].unsqueeze(-2).to(q.dtype)
        sin = self.sin[positions].unsqueeze(-2).to(q.dtype)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _scaled(inv_freq: torch.Tensor, p: dict) -> torch.Tensor:
    """Linear position interpolation, or Llama 3's: long wavelengths slowed by `factor`, short ones kept,
    a smooth blend between (as transformers' _compute_llama3_parameters)."""
    factor = p["factor"]
    if p.get("rope_type", p.get("type")) == "linear":
        return inv_freq / factor
    low, high, old_len = p["low_freq_factor"], p["high_freq_factor"], p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    out = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < old_len / high) * ~(wavelen > old_len / low)
    return torch.where(medium, smoothed, out)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)
