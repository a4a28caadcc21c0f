"""GPT-2: learned positions, pre-LayerNorm blocks, fused qkv in Conv1D layout ([in, out] weights), tied head.

Module names mirror the Hugging Face checkpoint (`transformer.h.0.attn.c_attn.weight`, ...).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from llm_node.config import ModelConfig
from llm_node.errors import ModelFormatError
from llm_node.layers.attention import AttentionContext, PagedAttention

ACTIVATIONS = {"gelu_new": lambda x: F.gelu(x, approximate="tanh"),
               "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
               "gelu": F.gelu, "relu": F.relu}


class Conv1D(nn.Module):
    """A linear layer with the weight stored [in, out], as GPT-2 checkpoints do."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class GPT2Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.num_heads, self.head_dim = cfg.num_heads, cfg.head_dim
        self.c_attn = Conv1D(cfg.hidden_size, 3 * cfg.hidden_size)
        self.c_proj = Conv1D(cfg.hidden_size, cfg.hidden_size)
        self.attn = PagedAttention(cfg.num_heads, cfg.num_heads, cfg.head_dim, cfg.head_dim ** -0.5)

    def forward(self, x: torch.Tensor, ctx: AttentionContext | None) -> torch.Tensor:
        q, k, v = self.c_attn(x).view(*x.shape[:-1], 3, self.num_heads, self.head_dim).unbind(-3)
        return self.c_proj(self.attn(q, k, v, ctx))


class GPT2MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.hidden_act not in ACTIVATIONS:
            raise ModelFormatError(f"GPT-2 activation {cfg.hidden_act!r} is not supported")
        self.act = ACTIVATIONS[cfg.hidden_act]
        self.c_fc = Conv1D(cfg.hidden_size, cfg.intermediate_size)
        self.c_proj = Conv1D(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class GPT2Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.attn = GPT2Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)
        self.mlp = GPT2MLP(cfg)

    def forward(self, x: torch.Tensor, ctx: AttentionContext | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), ctx)
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.wpe = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.h = nn.ModuleList(GPT2Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.LayerNorm(cfg.hidden_size, eps=cfg.norm_eps)

    def forward(self, input_ids, positions, ctx):
        x = self.wte(input_ids) + self.wpe(positions)
        for block in self.h:
            x = block(x, ctx)
        return self.ln_f(x)


class GPT2ForCausalLM(nn.Module):
    """forward(input_ids int64[T], positions int64[T], ctx) -> hidden [T, hidden] (after ln_f);
    compute_logits(hidden) -> [.., vocab]. With ctx=None, ids and positions are [B, L] (training)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = GPT2Model(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor,
                ctx: AttentionContext | None = None) -> torch.Tensor:
        return self.transformer(input_ids, positions, ctx)

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden)
