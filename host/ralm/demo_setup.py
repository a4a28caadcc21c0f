"""What the demo builds on its first run (the model, the two datastores and their dev-tuned settings,
DIR/tuned.json) and how its retrieval settings are resolved: a flag wins, else the datastore's tuned.json."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from host.index.builder import BuildConfig
from host.ralm.corpus import Embedder
from host.ralm.datastore import (DatastoreConfig, build_chunk_datastore, build_knn_datastore, default_nlist,
                                 load_datastore)
from host.ralm.splits import dev_test, embedded_chunks, lm_files
from host.ralm.tuned import Tuned, load_tuned, save_tuned
from host.spec.errors import InputError
from llm_node.defaults import DEMO_MODEL

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DemoConfig:
    """Everything the demo needs; defaults are the embedded ones `make demo` runs. Retrieval settings left
    None (nprobe, k, lam, knn_temperature, lut_bits) come from the datastores' tuned.json (``apply_tuned``)."""

    workdir: Path = Path("build/demo")
    model: Path = DEMO_MODEL
    train_minutes: float = 3.0
    knn_tokens: int = 100_000      # training-split tokens in the demo's kNN datastore
    max_chunks: int = 2000         # docstring chunks in the type-1 datastore (0: all 6,640; MiniLM is slow on CPU)
    backend: str = "cpu"
    shards: int = 2
    nprobe: int | None = None      # both datastores; None: each one's tuned nprobe
    k: int | None = None
    lam: float | None = None
    knn_temperature: float | None = None
    lut_bits: int | None = None    # both datastores; None: each one's tuned lut_bits
    chunk_nprobe: int | None = None
    chunk_lut_bits: int | None = None
    interval: int = 16
    max_tokens: int = 32
    lanes: int = 4
    clock_mhz: float = 150.0
    rtl_summary: Path | None = None
    threads: int = 1
    plot: bool = True
    max_batch: int = 256           # coordinator: queries per fan-out (a RAGO plan sets these)
    max_wait_s: float = 0.0        # coordinator: extra wait to fill a batch

    def __post_init__(self):
        self.workdir, self.model = Path(self.workdir), Path(self.model)
        if self.shards < 1 or self.max_tokens < 1 or self.lanes < 1 or self.clock_mhz <= 0:
            raise InputError(f"bad demo settings: shards={self.shards}, max_tokens={self.max_tokens}, "
                             f"lanes={self.lanes}, clock_mhz={self.clock_mhz}")


def ensure_model(cfg: DemoConfig, out) -> None:
    if (cfg.model / "model.safetensors").is_file() and (cfg.model / "train_log.json").is_file():
        return
    from llm_node.train import TrainConfig, train_demo_model  # lazy: torch

    out(f"[1/6] no model in {cfg.model}: training the small GPT-2 demo model for {cfg.train_minutes:g} min "
        "on the Python standard library's sources")
    r = train_demo_model(TrainConfig(out=cfg.model, minutes=cfg.train_minutes, threads=max(cfg.threads, 2)))
    out(f"      {r['params'] / 1e6:.2f} M parameters, held-out perplexity {r['val_ppl']:.1f}")


def _has_fingerprint(store: Path) -> bool:
    meta = store / "datastore.json"
    return meta.is_file() and "model_fingerprint" in json.loads(meta.read_text())


def ensure_datastores(cfg: DemoConfig, out) -> tuple[Path, Path]:
    """(kNN datastore, chunk datastore) folders, built and tuned on dev once per model and settings."""
    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch

    stamp = hashlib.sha256((cfg.model / "train_log.json").read_bytes()).hexdigest()[:10]
    nlist = min(512, default_nlist(cfg.knn_tokens or 800_000))     # a small index trains in seconds
    knn_dir = cfg.workdir / f"knn-{stamp}-{cfg.knn_tokens}-ivf{nlist}-s{cfg.shards}"
    engine, split = None, {}
    if not _has_fingerprint(knn_dir) or load_tuned(knn_dir) is None:
        train, split["files"] = lm_files(cfg.model)
        split["ids"] = ids = train[: cfg.knn_tokens] if cfg.knn_tokens else train
    if not _has_fingerprint(knn_dir):
        out(f"[2/6] building the kNN-LM datastore: hidden states of {len(ids):,} training tokens")
        engine = LLMEngine(EngineConfig(cfg.model, num_kv_blocks=64))
        small = DatastoreConfig(BuildConfig(nlist=nlist, m=32, train_size=50_000), shards=cfg.shards)
        build_knn_datastore(engine, ids.tolist(), knn_dir, small, meta={"model": str(cfg.model), "split": "train"})
    if load_tuned(knn_dir) is None:
        from host.ralm.evaluate import PerplexityConfig  # lazy: torch
        from host.ralm.tune_knn import tune_knn  # lazy: torch

        engine = engine or LLMEngine(EngineConfig(cfg.model, num_kv_blocks=64))
        pcfg = PerplexityConfig(window=engine.max_model_len)
        out("[2/6] tuning kNN-LM on the held-out dev files (lambda, K, T, nprobe, lut_bits)")
        res = tune_knn(engine, load_datastore(knn_dir), cfg.model, *dev_test(split["files"], pcfg.seed,
                                                                                  pcfg.dev_fraction),
                       pcfg, train_ids=split["ids"], progress=False)
        save_tuned(knn_dir, res["tuned"])
    chunks, x = embedded_chunks(cfg.workdir / "embeddings", max_chunks=cfg.max_chunks)
    chunk_dir = cfg.workdir / f"chunks-{len(chunks)}-s{cfg.shards}"
    if not (chunk_dir / "datastore.json").is_file():
        out(f"[2/6] building the chunk datastore: {len(chunks):,} docstring chunks")
        build_chunk_datastore(chunks, x, chunk_dir, DatastoreConfig(BuildConfig(nlist=default_nlist(len(chunks)), m=48),
                                                                    shards=cfg.shards))
    if load_tuned(chunk_dir) is None:
        from host.ralm.tune_chunks import tune_chunks  # lazy: torch

        out("[2/6] tuning type-1 retrieval on the dev questions (nprobe)")
        save_tuned(chunk_dir, tune_chunks(load_datastore(chunk_dir), Embedder(), x)["tuned"])
    return knn_dir, chunk_dir


def apply_tuned(cfg: DemoConfig, knn_dir: Path, chunk_dir: Path) -> tuple[DemoConfig, Tuned, Tuned]:
    """``cfg`` with every retrieval setting left None taken from the datastores' tuned.json; K is capped at 10
    with --backend verilator (its k=100 top-K core does not compile with this g++)."""
    tk, tc = load_tuned(knn_dir), load_tuned(chunk_dir)
    if tk is None or tc is None:
        raise InputError(f"no tuned.json beside {knn_dir if tk is None else chunk_dir}; run `anole ralm eval`")

    def pick(flag, tuned):
        return tuned if flag is None else flag
    k = pick(cfg.k, min(tk.k, 10) if cfg.backend == "verilator" else tk.k)
    return dataclasses.replace(
        cfg, nprobe=pick(cfg.nprobe, tk.nprobe), k=k, lam=pick(cfg.lam, tk.lam),
        knn_temperature=pick(cfg.knn_temperature, tk.temperature), lut_bits=pick(cfg.lut_bits, tk.lut_bits),
        chunk_nprobe=pick(cfg.chunk_nprobe, pick(cfg.nprobe, tc.nprobe)),
        chunk_lut_bits=pick(cfg.chunk_lut_bits, pick(cfg.lut_bits, tc.lut_bits))), tk, tc
