"""The demo LM's own train / held-out split (llm_node/train.py), re-derived from its train_log.json, and the
type-1 chunk corpus with its embeddings (cached)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from host.ralm.corpus import Embedder, chunk_texts, docstrings
from host.spec.errors import InputError

log = logging.getLogger(__name__)


def lm_files(model_dir: str | Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """(train ids int64, [held-out ids int64 of each held-out file]) of the corpus the checkpoint in ``model_dir``
    was trained on: the same files, the same val_fraction split by file, encoded with its tokenizer (EOS after
    each file)."""
    from tokenizers import Tokenizer

    from llm_node.train import EOS, read_corpus  # lazy: torch

    model_dir = Path(model_dir)
    log_path = model_dir / "train_log.json"
    if not log_path.is_file():
        raise InputError(f"{model_dir} has no train_log.json: its training split is unknown; "
                         "train it with `anole llm train` or pass --text")
    cfg = json.loads(log_path.read_text())["config"]
    texts = read_corpus(cfg["corpus"], cfg["max_corpus_bytes"])
    n_val = max(1, int(len(texts) * cfg["val_fraction"]))
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    eos = tok.token_to_id(EOS)
    files = [np.asarray(e.ids + [eos], np.int64) for e in tok.encode_batch(texts)]
    return np.concatenate(files[:-n_val]), files[-n_val:]


def split_files(n: int, seed: int = 0, dev_fraction: float = 0.5) -> tuple[list[int], list[int]]:
    """(dev, test) file numbers: a seeded permutation of 0..n-1 cut at ``dev_fraction``, each part sorted.
    InputError when either part would be empty (perplexity of no tokens is not a number)."""
    if not 0 < dev_fraction < 1:
        raise InputError(f"dev_fraction must be in (0, 1), not {dev_fraction}")
    n_dev = int(round(n * dev_fraction))
    if n_dev < 1 or n - n_dev < 1:
        raise InputError(f"{n} held-out file(s) cannot be split into non-empty dev and test parts "
                         f"(dev_fraction {dev_fraction}); the model needs more held-out files")
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[:n_dev].tolist()), sorted(order[n_dev:].tolist())


def dev_test(files: list[np.ndarray], seed: int = 0, dev_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(dev ids, test ids) int64: the held-out files split by ``split_files``, each part concatenated."""
    dev, test = split_files(len(files), seed, dev_fraction)
    return np.concatenate([files[i] for i in dev]), np.concatenate([files[i] for i in test])


def embedded_chunks(workdir: str | Path, embedder=None, max_chunks: int = 0):
    """(chunks of the standard library's docstrings, their MiniLM embeddings float32[n, 384]), cached;
    ``max_chunks`` keeps an evenly spaced sample of that many chunks."""

    chunks = chunk_texts(docstrings())
    if max_chunks and len(chunks) > max_chunks:       # an even sample over all modules, deterministic
        chunks = [chunks[i] for i in np.linspace(0, len(chunks) - 1, max_chunks).round().astype(int)]
    return chunks, cached_embeddings([c.text for c in chunks], workdir, embedder)


def cached_embeddings(texts: list[str], workdir: str | Path, embedder=None) -> np.ndarray:
    """MiniLM embeddings float32[n, 384] of ``texts``, cached in workdir/embeddings-<hash of the texts>.npy."""

    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    cache = Path(workdir) / f"embeddings-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    log.info("embedding %d chunks with MiniLM", len(texts))
    x = (embedder or Embedder()).encode(texts, progress=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, x)
    return x
