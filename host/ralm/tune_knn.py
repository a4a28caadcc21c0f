"""The kNN-LM quality protocol: settings chosen on the dev files, perplexity reported on the test files, and
the gain split by train/test overlap (host.ralm.leakage)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from host.ralm.datastore import Datastore, check_model
from host.ralm.evaluate import heldout_scores, knn_nll, knn_sweep, retriever, target_log_probs
from host.ralm.leakage import leaked, split_perplexity
from host.ralm.tuned import PerplexityConfig, Tuned
from host.spec.errors import InputError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Scored:
    """One split scored by the LM: log p_lm of the targets float32[n], hidden states float32[n, H], targets."""

    lm_logp: torch.Tensor
    hidden: np.ndarray
    y: torch.Tensor
    ids: np.ndarray

    @property
    def base(self) -> float:
        return float(np.exp(-self.lm_logp.double().mean().item()))


def score(engine, ids: np.ndarray, window: int, progress: bool = True) -> Scored:
    logits, hidden, y = heldout_scores(engine, np.asarray(ids).tolist(), window, progress=progress)
    assert np.array_equal(y.numpy(), np.asarray(ids)[1:])      # targets are the stream shifted by one
    return Scored(target_log_probs(logits, y), hidden, y, np.asarray(ids))


def retrieve_all(ds: Datastore, parts: list[Scored], cfg: PerplexityConfig, open_retriever=None) -> dict:
    """{(nprobe, lut_bits): [(dist, next tokens) of each part]} with K = max(cfg.ks), one search per setting."""
    open_retriever = open_retriever or partial(retriever, ds)
    cuts = np.cumsum([len(p.hidden) for p in parts])[:-1]
    out = {}
    for lut_bits in cfg.lut_bits:
        for nprobe in cfg.nprobes:
            with open_retriever(nprobe, max(cfg.ks), lut_bits) as retrieve:
                dist, ids = retrieve(np.concatenate([p.hidden for p in parts]))
            out[(nprobe, lut_bits)] = list(zip(np.split(dist, cuts), np.split(ds.payload_of(ids), cuts)))
    return out


def sweep_rows(dev: Scored, test: Scored, found: dict, cfg: PerplexityConfig) -> list[dict]:
    """Dev and test perplexity of every (nprobe, lut_bits, lambda, k, temperature)."""
    rows = []
    for (nprobe, lut_bits), ((d_dist, d_tok), (t_dist, t_tok)) in found.items():
        on_dev = knn_sweep(dev.lm_logp, dev.y, d_dist, d_tok, cfg)
        on_test = knn_sweep(test.lm_logp, test.y, t_dist, t_tok, cfg)
        rows += [{"nprobe": nprobe, "lut_bits": lut_bits, "lam": lam, "k": k, "temperature": t,
                  "dev": on_dev[key], "test": on_test[key]} for key in on_dev for lam, k, t in [key]]
    return rows


def tune_knn(engine, ds: Datastore, model_dir, dev_ids: np.ndarray, test_ids: np.ndarray, cfg: PerplexityConfig,
             train_ids: np.ndarray | None = None, open_retriever=None, progress: bool = True) -> dict:
    """Choose (lambda, k, temperature, nprobe, lut_bits) by dev perplexity and report it on test.

    ``train_ids``: the tokens the datastore holds, for the leakage figures. ``open_retriever(nprobe, k,
    lut_bits)``: a context manager yielding a Retriever (default: in-process over ``ds``). Returns
    {"tuned": Tuned, "rows": every setting's dev/test perplexity, "scores": (dev, test) Scored}."""
    if ds.values is None:
        raise InputError(f"{ds.path} is a {ds.meta.get('kind')} datastore; the kNN-LM protocol needs a knn one")
    check_model(ds.meta, model_dir)                          # before any scoring
    if len(dev_ids) < 2 or len(test_ids) < 2:
        raise InputError(f"empty split: {len(dev_ids)} dev and {len(test_ids)} test tokens")
    dev, test = (score(engine, ids, cfg.window, progress) for ids in (dev_ids, test_ids))
    found = retrieve_all(ds, [dev, test], cfg, open_retriever)
    rows = sweep_rows(dev, test, found, cfg)
    best = min(rows, key=lambda r: r["dev"])
    figures = {"dev_tokens": len(dev.y), "test_tokens": len(test.y), "datastore_keys": int(ds.index.ntotal),
               "base_dev": dev.base, "base_test": test.base, "knn_dev": best["dev"], "knn_test": best["test"],
               "test_oracle": min(r["test"] for r in rows), "seed": cfg.seed, "dev_fraction": cfg.dev_fraction}
    if train_ids is not None:
        t_dist, t_tok = found[(best["nprobe"], best["lut_bits"])][1]
        nll = knn_nll(test.lm_logp, test.y, t_dist, t_tok, best["lam"], best["k"], best["temperature"])
        figures["leakage"] = leakage_figures(train_ids, test, nll, cfg.ngram)
    tuned = Tuned(kind="knn", nprobe=best["nprobe"], lut_bits=best["lut_bits"], k=best["k"], lam=best["lam"],
                  temperature=best["temperature"], figures=figures)
    return {"tuned": tuned, "rows": rows, "scores": (dev, test)}


def leakage_figures(train_ids: np.ndarray, test: Scored, knn_nll_test: np.ndarray, n: int) -> dict:
    """Share of test targets whose preceding n-gram is in the datastore's text; base and kNN-LM perplexity
    on those positions and on the others."""
    mask = leaked(train_ids, test.ids, n)
    base_nll = -test.lm_logp.double().numpy()
    (b_in, b_out), (k_in, k_out) = split_perplexity(base_nll, mask), split_perplexity(knn_nll_test, mask)
    return {"ngram": n, "fraction": float(mask.mean()), "positions": int(mask.sum()),
            "base_leaked": b_in, "knn_leaked": k_in, "base_clean": b_out, "knn_clean": k_out}
