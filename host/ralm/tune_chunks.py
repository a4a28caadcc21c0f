"""The type-1 quality protocol: corpus questions split into dev and test, nprobe and lut_bits chosen by the dev
top-10 hit rate, top-1 and top-10 hit rates reported on test beside exact search in the same run."""
from __future__ import annotations

import logging
from functools import partial

import numpy as np

from host.ralm.datastore import Datastore
from host.ralm.evaluate import corpus_questions, hit_rate, retriever
from host.ralm.splits import split_files
from host.ralm.tuned import Tuned
from host.spec.errors import InputError

log = logging.getLogger(__name__)
KINDS = ("name", "excerpt")


def dev_test_questions(chunks: list[dict], n: int, seed: int = 0) -> dict:
    """{kind: {"dev": [(question, answer)], "test": [...]}}: ``n`` questions of each kind, split in halves."""
    out = {}
    for kind in KINDS:
        qs = corpus_questions(chunks, n, kind, seed)
        dev, test = split_files(len(qs), seed, 0.5)
        out[kind] = {"dev": [qs[i] for i in dev], "test": [qs[i] for i in test]}
    return out


def hit_rates(ds: Datastore, questions: dict, qx: dict, search) -> dict:
    """{(kind, split, top): hit rate} with ``search(embeddings) -> ids int64[nq, >= 10]``."""
    out = {}
    for kind, parts in questions.items():
        for split, qs in parts.items():
            texts = ds.payload_of(search(qx[kind][split]))
            for top in (1, 10):
                out[(kind, split, top)] = hit_rate(qs, lambda _: [[t for t in row[:top] if t] for row in texts])
    return out


def tune_chunks(ds: Datastore, embedder, chunk_embeddings: np.ndarray, n_questions: int = 200,
                nprobes=(8, 32), lut_bits=(16,), seed: int = 0, open_retriever=None) -> dict:
    """Choose (nprobe, lut_bits) by the dev top-10 hit rate (mean over question kinds; ties: the cheaper one)
    and report test hit rates; exact search over ``chunk_embeddings`` float32[n, 384] is the reference.
    Returns {"tuned": Tuned, "rows": [{nprobe, lut_bits, rates}], "exact": rates, "questions": counts}."""
    if ds.chunks is None:
        raise InputError(f"{ds.path} is a {ds.meta.get('kind')} datastore; the type-1 protocol needs a chunks one")
    if len(chunk_embeddings) != ds.index.ntotal:
        raise InputError(f"{len(chunk_embeddings)} chunk embeddings for {ds.index.ntotal} datastore entries")
    open_retriever = open_retriever or partial(retriever, ds)
    questions = dev_test_questions(ds.chunks, n_questions, seed)
    qx = {kind: {split: embedder.encode([q for q, _ in qs]) for split, qs in parts.items()}
          for kind, parts in questions.items()}
    rows = []
    for nprobe in sorted(nprobes):
        for bits in sorted(lut_bits):
            with open_retriever(nprobe, 10, bits) as retrieve:
                rows.append({"nprobe": nprobe, "lut_bits": bits,
                             "rates": hit_rates(ds, questions, qx, lambda x: retrieve(x)[1])})
    exact = hit_rates(ds, questions, qx, lambda x: np.argsort(-(x @ chunk_embeddings.T), axis=1)[:, :10])
    best = max(rows, key=lambda r: (np.mean([r["rates"][(k, "dev", 10)] for k in KINDS]), -r["nprobe"], -r["lut_bits"]))
    figures = {"questions": {k: {s: len(v) for s, v in p.items()} for k, p in questions.items()}, "seed": seed,
               "test": {f"{k}@{top}": best["rates"][(k, "test", top)] for k in KINDS for top in (1, 10)},
               "exact_test": {f"{k}@{top}": exact[(k, "test", top)] for k in KINDS for top in (1, 10)},
               "dev": {f"{k}@10": best["rates"][(k, "dev", 10)] for k in KINDS}}
    tuned = Tuned(kind="chunks", nprobe=best["nprobe"], lut_bits=best["lut_bits"], k=1, figures=figures)
    return {"tuned": tuned, "rows": rows, "exact": exact}
