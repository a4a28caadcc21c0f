"""Quality of the RALMs, measured: kNN-LM perplexity against the base LM, type-1 retrieval hit rate."""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from host.backends.local_search import LocalSearcher
from host.ralm.datastore import scored_windows
from host.ralm.tuned import PerplexityConfig
from host.serve.coordinator import Coordinator
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams
from llm_node.knn import knn_target_probs, mix_target_log_probs

log = logging.getLogger(__name__)

Retriever = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""queries float32[n, d] -> (distances float32[n, k] with inf for empty slots, ids int64[n, k])."""


def heldout_scores(engine, token_ids, window: int, progress: bool = True):
    """(logits float32[n, V], hidden float32[n, H], next tokens int64[n]) of every position of held-out text
    with a successor, in the half-overlapping windows that ``datastore.knn_keys`` uses (y = token_ids[1:])."""
    ids = list(token_ids)
    if len(ids) < 2:
        raise InputError(f"{len(ids)} held-out token(s): nothing to score")
    parts = list(scored_windows(engine, ids, window, logits=True, desc="score held-out" if progress else None))
    return (torch.cat([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            torch.as_tensor(np.concatenate([p[2] for p in parts])))


def target_log_probs(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """log p_lm(y_i) float32[n] from logits float[n, V]."""
    return torch.log_softmax(logits.float(), -1).gather(1, torch.as_tensor(y)[:, None])[:, 0]


def knn_nll(lm_logp: torch.Tensor, y, dist: np.ndarray, tokens: np.ndarray, lam: float, k: int,
            temperature: float) -> np.ndarray:
    """Per-token NLL float64[n] of kNN-LM at one setting (the first ``k`` of the retrieved neighbours)."""
    p, has = knn_target_probs(dist[:, :k], tokens[:, :k], y, temperature)
    return -mix_target_log_probs(lm_logp, p, has, lam).double().numpy()


def knn_sweep(lm_logp: torch.Tensor, y, dist: np.ndarray, tokens: np.ndarray, cfg: PerplexityConfig) -> dict:
    """{(lambda, k, temperature): perplexity} of kNN-LM from one retrieval: lm_logp float[n] (log p_lm of the
    targets y int64[n]), dist float32[n, K] (inf = empty), tokens int64[n, K] (next tokens, -1 = empty)."""
    if dist.shape[1] < max(cfg.ks):
        raise InputError(f"retrieval returned k={dist.shape[1]}, the sweep needs {max(cfg.ks)}")
    if len(lm_logp) == 0:
        raise InputError("no tokens to score")
    table = {}
    for k, temp in itertools.product(cfg.ks, cfg.temperatures):
        p, has = knn_target_probs(dist[:, :k], tokens[:, :k], y, temp)
        for lam in cfg.lambdas:
            table[(lam, k, temp)] = float(np.exp(-mix_target_log_probs(lm_logp, p, has, lam).double().mean().item()))
    return table


def hit_rate(questions: list[tuple[str, str]], retrieve_texts: Callable[[list[str]], list[list[str]]]) -> float:
    """Fraction of (question, answer text) pairs whose retrieved chunks contain the answer text."""
    if not questions:
        raise InputError("no questions")
    found = retrieve_texts([q for q, _ in questions])
    return sum(any(ans in (t or "") for t in texts) for (_, ans), texts in zip(questions, found)) / len(questions)


@contextlib.contextmanager
def retriever(ds, nprobe: int, k: int, lut_bits: int = 16, memory_nodes: str = "", backend: str = "cpu",
              batch: int = 1024, progress: bool = True):
    """A Retriever over a loaded datastore: in-process (LocalSearcher, all shards) or through the memory
    nodes at ``memory_nodes`` ('H:P,...', the coordinator's path). Both give the same bit-exact results."""

    params = ScanParams(m=ds.index.m, k=k, lut_bits=lut_bits)
    loop = searcher = coord = None
    if memory_nodes:
        loop = asyncio.new_event_loop()
        coord = Coordinator(ds.index, [a for a in memory_nodes.split(",") if a.strip()], params)
        loop.run_until_complete(coord.connect())
        search = lambda q: loop.run_until_complete(coord.search(q, nprobe, k))  # noqa: E731
    else:
        searcher = LocalSearcher(ds.index, params, backend=backend)
        search = lambda q: searcher.search(q, nprobe)  # noqa: E731

    def retrieve(queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [search(queries[lo: lo + batch])
                 for lo in tqdm(range(0, len(queries), batch), desc=f"retrieve nprobe={nprobe}",
                                disable=not progress or len(queries) <= batch)]
        return np.concatenate([p.distances for p in parts]), np.concatenate([p.ids for p in parts])
    try:
        yield retrieve
    finally:
        if coord is not None:
            loop.run_until_complete(coord.close())
            loop.close()
        if searcher is not None:
            searcher.close()


def corpus_questions(chunks: list[dict], n: int, kind: str = "excerpt", seed: int = 0) -> list[tuple[str, str]]:
    """(question, answer text) pairs built from chunk records {source, text}.

    name:    "What does <module> <qualified name> do?" -> the first 8 words of that object's docstring
    excerpt: 12 words from the middle of a chunk, paraphrased as a question -> the 8 words that follow them
    """
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    order = rng.permutation(len(chunks))
    for i in order:
        words = chunks[i]["text"].split()
        source = chunks[i]["source"]
        if kind == "name":
            path, _, name = source.partition(":")
            first = i == 0 or chunks[i - 1]["source"] != source       # the start of that docstring
            if not name or not first or source in seen or len(words) < 12:
                continue
            seen.add(source)
            module = path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
            out.append((f"What does {name} in the {module} module do?", " ".join(words[:8])))
        elif kind == "excerpt":
            if len(words) < 40:
                continue
            lo = int(rng.integers(8, len(words) - 28))
            question = f"Which documentation says: {' '.join(words[lo: lo + 12])}?"
            out.append((question, " ".join(words[lo + 12: lo + 20])))
        else:
            raise InputError(f"question kind must be name or excerpt, not {kind!r}")
        if len(out) == n:
            break
    return out
