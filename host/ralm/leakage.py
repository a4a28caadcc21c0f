"""Train/test overlap of a kNN-LM evaluation: which test positions are preceded by an n-gram that occurs
verbatim in the datastore's training text (licence headers, idioms and copied code in the standard library),
so the gain of kNN-LM can be reported with and without them."""
from __future__ import annotations

import numpy as np

from host.spec.errors import InputError

_MULT = np.uint64(0x9E3779B97F4A7C15)


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """uint64[len(ids) - n + 1]: a 64-bit polynomial hash of every n-gram of int64 ids (ids[i:i+n] -> i)."""
    ids = np.asarray(ids, dtype=np.int64)
    if n < 1:
        raise InputError(f"n-gram length must be >= 1, not {n}")
    if len(ids) < n:
        return np.zeros(0, np.uint64)
    x = (ids.astype(np.uint64) + np.uint64(1)) * _MULT
    h = np.zeros(len(ids) - n + 1, np.uint64)
    with np.errstate(over="ignore"):                      # arithmetic modulo 2**64 is the point
        for j in range(n):
            h = h * _MULT + (x[j: len(ids) - n + 1 + j] ^ (x[j: len(ids) - n + 1 + j] >> np.uint64(29)))
    return h


def leaked(train_ids: np.ndarray, stream: np.ndarray, n: int = 16) -> np.ndarray:
    """bool[len(stream) - 1]: entry i is about predicting stream[i + 1] (the targets of ``heldout_scores``);
    True when the n tokens before it, stream[i + 1 - n : i + 1], occur verbatim in ``train_ids`` (a 64-bit
    hash match; a false match needs a collision among ~1e6 n-grams, probability ~1e-7)."""
    stream = np.asarray(stream, dtype=np.int64)
    out = np.zeros(max(len(stream) - 1, 0), bool)
    seen = np.unique(ngram_hashes(train_ids, n))
    grams = ngram_hashes(stream[:-1], n)                  # grams[j] = stream[j : j + n] precedes stream[j + n]
    if len(grams) and len(seen):
        pos = np.searchsorted(seen, grams).clip(max=len(seen) - 1)
        out[n - 1:] = seen[pos] == grams
    return out


def split_perplexity(nll: np.ndarray, mask: np.ndarray) -> tuple[float | None, float | None]:
    """(perplexity over the positions where mask is True, over the others); None for an empty part."""
    nll, mask = np.asarray(nll, np.float64), np.asarray(mask, bool)
    return tuple(float(np.exp(nll[m].mean())) if m.any() else None for m in (mask, ~mask))
