"""Quality of the RALMs, measured: kNN-LM perplexity against the base LM, type-1 retrieval hit rate."""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from host.errors import InputError
from host.ralm.knn import interpolate, knn_log_probs

log = logging.getLogger(__name__)

Retriever = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""queries float32[n, d] -> (distances float32[n, k] with inf for empty slots, ids int64[n, k])."""


@dataclass(slots=True)
class PerplexityConfig:
    """The sweep of ``anole ralm eval``: every lambda x k x temperature is scored from one retrieval."""

    lambdas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.4)
    ks: tuple[int, ...] = (8, 32)
    temperatures: tuple[float, ...] = (1.0, 4.0, 16.0)
    window: int = 128
    max_tokens: int = 4096

    def __post_init__(self):
        if any(not 0 <= x <= 1 for x in self.lambdas):
            raise InputError(f"lambdas must be in [0, 1], not {self.lambdas}")
        if any(k < 1 or k > 100 for k in self.ks):
            raise InputError(f"k must be in 1..100, not {self.ks}")


@dataclass(slots=True)
class PerplexityResult:
    tokens: int
    base: float
    table: dict = field(default_factory=dict)      # (lambda, k, temperature) -> perplexity

    @property
    def best(self) -> tuple[tuple, float]:
        return min(self.table.items(), key=lambda kv: kv[1])


def scored_positions(engine, token_ids: list[int], window: int):
    """(logits float32[n, V], hidden float32[n, H], next tokens int64[n]) for every position with a successor,
    in half-overlapping windows (the same positions ``datastore.knn_keys`` uses)."""
    ids = np.asarray(token_ids, dtype=np.int64)
    stride = max(1, window // 2)
    out_l, out_h, out_y = [], [], []
    for s in range(0, max(1, len(ids) - window + stride), stride):
        w = ids[s: s + window + 1]
        if len(w) < 2:
            break
        logits, hidden = engine.score(w[:-1].tolist())
        first = 0 if s == 0 else window - stride
        out_l.append(logits[first:].float())
        out_h.append(hidden[first:].float())
        out_y.append(torch.as_tensor(w[first + 1:]))
    return torch.cat(out_l), torch.cat(out_h), torch.cat(out_y)


def perplexity(engine, token_ids: list[int], retrieve: Retriever, values: np.ndarray,
               cfg: PerplexityConfig, progress: bool = True) -> PerplexityResult:
    """Perplexity of held-out tokens under the base LM and under kNN-LM for every (lambda, k, temperature)."""
    token_ids = list(token_ids)[: cfg.max_tokens + 1]
    logits, hidden, y = scored_positions(engine, token_ids, cfg.window)
    vocab = logits.shape[1]
    dist, ids = retrieve(hidden.numpy())
    if dist.shape[1] < max(cfg.ks):
        raise InputError(f"retrieval returned k={dist.shape[1]}, the sweep needs {max(cfg.ks)}")
    tokens = np.where(ids >= 0, values[np.maximum(ids, 0)], -1)
    base_nll = -torch.log_softmax(logits, -1).gather(1, y[:, None]).mean().item()
    res = PerplexityResult(tokens=len(y), base=float(np.exp(base_nll)))
    grid = list(itertools.product(cfg.ks, cfg.temperatures))
    for k, temp in tqdm(grid, desc="kNN-LM sweep", disable=not progress):
        knn = knn_log_probs(dist[:, :k], tokens[:, :k], vocab, temp)
        for lam in cfg.lambdas:
            nll = -interpolate(logits, knn, lam).gather(1, y[:, None]).mean().item()
            res.table[(lam, k, temp)] = float(np.exp(nll))
    return res


def hit_rate(questions: list[tuple[str, str]], retrieve_texts: Callable[[list[str]], list[list[str]]]) -> float:
    """Fraction of (question, answer text) pairs whose retrieved chunks contain the answer text."""
    if not questions:
        raise InputError("no questions")
    found = retrieve_texts([q for q, _ in questions])
    return sum(any(ans in (t or "") for t in texts) for (_, ans), texts in zip(questions, found)) / len(questions)
