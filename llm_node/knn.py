"""kNN-LM arithmetic: neighbour distances -> p_knn over the vocabulary, and the interpolation with the LM.

p(w) = lambda * p_knn(w) + (1 - lambda) * p_lm(w),   p_knn(w) = sum_{j : v_j = w} softmax_j(-d_j / T)

(Khandelwal et al., kNN-LM; d_j are squared L2 distances of the k retrieved keys, v_j their next tokens.)
"""
from __future__ import annotations

import numpy as np
import torch

from host.spec.errors import InputError


def knn_log_probs(dist: np.ndarray, tokens: np.ndarray, vocab: int, temperature: float = 1.0) -> torch.Tensor:
    """log p_knn: float32[n, vocab] from dist float32[n, k] (inf = empty slot) and tokens int64[n, k] (-1 = empty).

    Rows without any neighbour get log p = -inf everywhere (the interpolation then keeps the LM alone).
    """
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, not {temperature}")
    d = torch.as_tensor(np.asarray(dist, dtype=np.float32))
    t = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    if d.shape != t.shape or d.ndim != 2:
        raise InputError(f"dist and tokens must both be [n, k], got {tuple(d.shape)} and {tuple(t.shape)}")
    valid = (t >= 0) & torch.isfinite(d)
    if bool((t[valid] >= vocab).any()):
        raise InputError(f"neighbour token ids must be < vocab={vocab}")
    logits = torch.where(valid, -d / temperature, torch.full_like(d, -torch.inf))
    w = torch.softmax(logits, dim=-1).nan_to_num(0.0)              # all-invalid rows -> zeros
    p = torch.zeros(d.shape[0], vocab, dtype=torch.float32)
    p.scatter_add_(1, torch.where(valid, t, 0), torch.where(valid, w, 0.0))
    return torch.log(p)


def interpolate(lm_logits: torch.Tensor, knn_logp: torch.Tensor, lam: float) -> torch.Tensor:
    """log(lambda * p_knn + (1 - lambda) * p_lm) for lm_logits float[n, vocab]; rows without neighbours keep p_lm."""
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lambda must be in [0, 1], not {lam}")
    lm_logp = torch.log_softmax(lm_logits.float(), dim=-1)
    if lam == 0.0:
        return lm_logp
    has = torch.isfinite(knn_logp).any(dim=-1, keepdim=True)
    mixed = torch.logaddexp(lm_logp + np.log1p(-lam) if lam < 1 else torch.full_like(lm_logp, -torch.inf),
                            knn_logp + np.log(lam))
    return torch.where(has, mixed, lm_logp)


def knn_sparse(dist: np.ndarray, tokens: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """p_knn of one query as (tokens int64[u], probs float32[u]) over its u distinct neighbour tokens, from
    dist float32[k] (inf = empty) and tokens int64[k] (-1 = empty): what the coordinator sends an LLM node.
    Computed exactly as ``knn_log_probs`` computes that row (float32 softmax, then per-token sums)."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, not {temperature}")
    d = torch.as_tensor(np.asarray(dist, dtype=np.float32)).reshape(-1)
    t = torch.as_tensor(np.asarray(tokens, dtype=np.int64)).reshape(-1)
    valid = (t >= 0) & torch.isfinite(d)
    if not bool(valid.any()):
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    w = torch.softmax(torch.where(valid, -d / temperature, torch.full_like(d, -torch.inf)), dim=-1)
    uniq, inverse = torch.unique(t[valid], return_inverse=True)
    p = torch.zeros(len(uniq), dtype=torch.float32).scatter_add_(0, inverse, w[valid])
    return uniq.numpy(), p.numpy()


def knn_target_probs(dist: np.ndarray, tokens: np.ndarray, targets, temperature: float = 1.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(p_knn(targets[i]) float32[n], has_neighbour bool[n]) without the [n, vocab] matrix: what
    ``knn_log_probs(...).exp()`` holds at the targets, for scoring many (k, temperature) settings cheaply."""
    if temperature <= 0:
        raise InputError(f"temperature must be > 0, not {temperature}")
    d = torch.as_tensor(np.asarray(dist, dtype=np.float32))
    t = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
    y = torch.as_tensor(np.asarray(targets, dtype=np.int64)).reshape(-1, 1)
    if d.shape != t.shape or d.ndim != 2 or len(y) != len(d):
        raise InputError(f"need dist, tokens [n, k] and targets [n], got {tuple(d.shape)}, {tuple(t.shape)}, "
                         f"{tuple(y.shape[:1])}")
    valid = (t >= 0) & torch.isfinite(d)
    w = torch.softmax(torch.where(valid, -d / temperature, torch.full_like(d, -torch.inf)), dim=-1).nan_to_num(0.0)
    return torch.where(valid & (t == y), w, 0.0).sum(dim=-1), valid.any(dim=-1)


def mix_target_log_probs(lm_logp: torch.Tensor, p_knn: torch.Tensor, has: torch.Tensor, lam: float) -> torch.Tensor:
    """log(lambda * p_knn + (1 - lambda) * p_lm) at the targets (float[n] each); rows without neighbours keep
    log p_lm, as ``interpolate`` does."""
    if not 0.0 <= lam <= 1.0:
        raise InputError(f"lambda must be in [0, 1], not {lam}")
    if lam == 0.0:
        return lm_logp.float()
    lm_part = lm_logp.float() + np.log1p(-lam) if lam < 1 else torch.full_like(lm_logp, -torch.inf, dtype=torch.float32)
    mixed = torch.logaddexp(lm_part, torch.log(p_knn) + np.log(lam))
    return torch.where(has, mixed, lm_logp.float())
