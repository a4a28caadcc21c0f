"""The retrieval demo: real MiniLM embeddings of a local corpus, IVF-PQ over shards, natural-language queries."""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.corpus import Chunk, Embedder, chunk_texts, docstrings
from host.datasets import ground_truth, recall_at_k
from host.index_builder import BuildConfig, build_ivfpq
from host.index_dir import export_index, load_index
from host.local_search import LocalSearcher
from host.scan_params import ScanParams

log = logging.getLogger(__name__)

QUESTIONS = [
    "How do I parse a JSON document from a string?",
    "Open a gzip compressed file for reading",
    "Compute a secure hash digest of some bytes",
    "Run a child process and capture its output",
    "Format a date and time as a string",
    "Split a path into directory and file name",
]


@dataclass(slots=True)
class DemoConfig:
    """Everything the demo needs; defaults are the embedded ones `make demo` runs."""

    workdir: Path = Path("build/demo")
    max_chunks: int = 0
    nlist: int = 64
    m: int = 48
    shards: int = 2
    nprobe: int = 8
    k: int = 10
    lut_bits: int = 16
    backend: str = "cpu"
    show: int = 3

    def __post_init__(self):
        self.workdir = Path(self.workdir)
        if self.show > self.k:
            raise ValueError(f"show ({self.show}) must be <= k ({self.k})")


def embedded_corpus(cfg: DemoConfig, embedder: Embedder) -> tuple[list[Chunk], np.ndarray]:
    """Chunks of the standard library's docstrings and their embeddings float32[n, 384], cached on disk."""
    chunks = chunk_texts(docstrings())
    if cfg.max_chunks:
        chunks = chunks[: cfg.max_chunks]
    key = hashlib.sha256("\x00".join(c.text for c in chunks).encode()).hexdigest()[:16]
    cache = cfg.workdir / f"embeddings-{key}.npy"
    if cache.is_file():
        log.info("embeddings of %d chunks from %s", len(chunks), cache)
        return chunks, np.load(cache)
    log.info("embedding %d chunks of standard-library docstrings with MiniLM", len(chunks))
    x = embedder.encode([c.text for c in chunks], progress=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, x)
    return chunks, x


def run(cfg: DemoConfig, out=print) -> dict:
    """Build (or reuse) the index, answer the questions, measure recall vs exact search and QPS."""
    embedder = Embedder()
    chunks, x = embedded_corpus(cfg, embedder)
    idx_dir = cfg.workdir / f"index-{len(chunks)}-ivf{cfg.nlist}-pq{cfg.m}-s{cfg.shards}"
    if not (idx_dir / "manifest.json").is_file():
        index = build_ivfpq(x, BuildConfig(nlist=cfg.nlist, m=cfg.m, seed=0))
        export_index(index, idx_dir, cfg.shards, source={"corpus": "python-stdlib-docstrings", "chunks": len(chunks)})
    index = load_index(idx_dir)
    params = ScanParams(m=cfg.m, k=cfg.k, lut_bits=cfg.lut_bits)
    searcher = LocalSearcher(index, params, backend=cfg.backend)
    out(f"corpus: {len(chunks)} chunks of standard-library docstrings, MiniLM d={x.shape[1]}; "
        f"IVF{cfg.nlist},PQ{cfg.m} over {cfg.shards} shards, backend {cfg.backend}, lut_bits {cfg.lut_bits}")
    qx = embedder.encode(QUESTIONS)
    res = searcher.search(qx, cfg.nprobe)
    for q, ids, dists in zip(QUESTIONS, res.ids, res.distances):
        out(f"\nQ: {q}")
        for rank, (i, d) in enumerate(zip(ids[: cfg.show], dists[: cfg.show]), 1):
            text = chunks[i].text
            out(f"  {rank}. [{d:.3f}] {chunks[i].source}: {text[:140]}{'...' if len(text) > 140 else ''}")
    # held-out style queries: the first words of random chunks, embedded afresh
    rng = np.random.default_rng(0)
    probe = [" ".join(chunks[i].text.split()[:12]) for i in rng.choice(len(chunks), 200, replace=False)]
    px = np.concatenate([qx, embedder.encode(probe)])
    truth = ground_truth(x, px, cfg.k)
    searcher.search(px[:1], cfg.nprobe)
    t0 = time.perf_counter()
    res = searcher.search(px, cfg.nprobe)
    elapsed = time.perf_counter() - t0
    recall = recall_at_k(res.ids, truth, cfg.k)
    out(f"\nrecall@{cfg.k} vs exact search over {len(px)} queries (nprobe={cfg.nprobe}): {recall:.3f}; "
        f"{len(px) / elapsed:,.0f} QPS (coarse {res.timings['coarse'] * 1e3:.1f} ms, "
        f"scan {res.timings['scan'] * 1e3:.1f} ms, merge {res.timings['merge'] * 1e3:.1f} ms)")
    searcher.close()
    return {"chunks": len(chunks), "recall": recall, "qps": len(px) / elapsed}
