"""RALM datastores: type 1 (text chunks keyed by MiniLM embeddings) and type 2 (kNN-LM: last-layer hidden
state -> next token). Each is an index directory (docs/index-format.md) plus its payload:

    DIR/index/          the IVF-PQ index directory, sharded over memory nodes; ids are row numbers
    DIR/datastore.json  {"kind": "chunks" | "knn", ...}
    DIR/chunks.jsonl    type 1: one {"source", "text"} per id
    DIR/values.i64      type 2: int64[n], the token that followed key i
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host.index.builder import BuildConfig, build_ivfpq
from host.index.index_dir import IndexDir, export_index, load_index
from host.ralm.corpus import Chunk
from host.ralm.tuned import TUNED
from host.spec.errors import IndexFormatError, InputError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DatastoreConfig:
    """How a datastore's IVF-PQ index is built and how many memory-node shards it is split over."""

    index: BuildConfig = field(default_factory=lambda: BuildConfig(nlist=64))
    shards: int = 2

    def __post_init__(self):
        if self.shards < 1:
            raise InputError(f"shards must be >= 1, not {self.shards}")


def default_nlist(n: int) -> int:
    """About 4 sqrt(n) lists, a power of two, at least 16 and at most n / 39 (faiss's training minimum)."""
    target = max(16, min(4 * np.sqrt(n), n / 39))
    return int(2 ** np.floor(np.log2(target)))


def _write(out: Path, keys: np.ndarray, cfg: DatastoreConfig, meta: dict) -> None:
    (out / TUNED).unlink(missing_ok=True)          # settings tuned on the old contents no longer hold
    index = build_ivfpq(keys, cfg.index)
    export_index(index, out / "index", cfg.shards, source={"datastore": meta["kind"]})
    (out / "datastore.json").write_text(json.dumps({**meta, "n": len(keys), "dim": keys.shape[1]}, indent=1) + "\n")


def build_chunk_datastore(chunks: list[Chunk], embeddings: np.ndarray, out: str | Path,
                          cfg: DatastoreConfig) -> Path:
    """Type 1: embeddings float32[n, d] of ``chunks`` -> index + chunks.jsonl."""
    out = Path(out)
    if len(chunks) != len(embeddings):
        raise InputError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "chunks.jsonl", "w") as f:
        for c in chunks:
            f.write(json.dumps({"source": c.source, "text": c.text}) + "\n")
    _write(out, embeddings, replace(cfg, index=replace(cfg.index, metric="cos")),    # MiniLM is a cosine model
           {"kind": "chunks", "embedder": "all-MiniLM-L6-v2"})
    return out


def windows(n: int, window: int) -> list[tuple[int, int]]:
    """(start, first) of the half-overlapping windows of ``window`` tokens that cover positions 0..n-2 of a
    stream of n tokens once each: window s scores tokens [s, s + window) and keeps positions >= s + first,
    so every position but the first ones sees at least window/2 tokens of context."""
    if window < 2:
        raise InputError(f"window must be >= 2, not {window}")
    stride = max(1, window // 2)
    out = []
    for s in range(0, max(1, n - window + stride), stride):
        if n - s < 2:
            break
        out.append((s, 0 if s == 0 else window - stride))
    return out


def scored_windows(engine, token_ids, window: int, logits: bool = False, batch_size: int = 32,
                   desc: str | None = None):
    """Yield (logits float32[n, V] or None, hidden float32[n, H], next tokens int64[n]) window by window over
    a token stream (the windows of ``windows``), scored in batches with ``engine.score_many``."""
    ids = np.asarray(token_ids, dtype=np.int64)
    spans = windows(len(ids), window)
    bar = tqdm(total=len(spans), desc=desc, disable=desc is None, unit="win")
    for lo in range(0, len(spans), batch_size):
        group = spans[lo: lo + batch_size]
        texts = [ids[s: s + window + 1] for s, _ in group]      # window tokens + the one after (the last value)
        scored = engine.score_many([t[:-1].tolist() for t in texts], batch_size=batch_size, return_logits=logits)
        for (s, first), t, (lg, h) in zip(group, texts, scored):
            yield (None if lg is None else lg[first:].float().cpu()), h[first:].float().cpu().numpy(), t[first + 1:]
        bar.update(len(group))
    bar.close()


def knn_keys(engine, token_ids: list[int], window: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keys float32[n, hidden] (the lm_head input at position t) and values int64[n] (token t+1) over a
    token stream; every position t < len-1 appears once (``windows``)."""
    keys, values = [], []
    for _, h, y in scored_windows(engine, token_ids, window, desc="kNN-LM keys" if progress else None):
        keys.append(h)
        values.append(y)
    return np.concatenate(keys), np.concatenate(values)


def build_knn_datastore(engine, token_ids: list[int], out: str | Path, cfg: DatastoreConfig,
                        window: int | None = None, meta: dict | None = None) -> Path:
    """Type 2: run the LM over a token stream, index its hidden states, store the next tokens."""
    window = window or engine.max_model_len
    keys, values = knn_keys(engine, token_ids, window)
    return write_knn_datastore(keys, values, out, cfg, {"window": window, "model_fingerprint":
                                                        model_fingerprint(engine.config.model), **(meta or {})})


def write_knn_datastore(keys: np.ndarray, values: np.ndarray, out: str | Path, cfg: DatastoreConfig,
                        meta: dict) -> Path:
    """Type 2 from computed keys float32[n, hidden] and values int64[n]; ``meta`` names the model
    (``model_fingerprint``) and the window."""
    out = Path(out)
    if keys.shape[1] % cfg.index.m:
        raise InputError(f"hidden size {keys.shape[1]} is not divisible by m={cfg.index.m}")
    if len(keys) != len(values):
        raise InputError(f"{len(keys)} keys but {len(values)} values")
    out.mkdir(parents=True, exist_ok=True)
    np.asarray(values).astype("<i8").tofile(out / "values.i64")
    _write(out, keys, cfg, {"kind": "knn", **meta})
    log.info("kNN-LM datastore: %d keys of dim %d -> %s", len(keys), keys.shape[1], out)
    return out


def model_fingerprint(model_dir: str | Path) -> dict:
    """What identifies the LM behind a kNN-LM datastore: hidden size and sha256 of its weights and tokenizer."""
    model_dir = Path(model_dir)

    def sha(paths):
        h = hashlib.sha256()
        for p in paths:
            h.update(p.read_bytes())
        return h.hexdigest() if paths else None
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir} is not a model folder (no config.json)")
    cfg = json.loads((model_dir / "config.json").read_text())
    return {"hidden_size": cfg.get("hidden_size", cfg.get("n_embd")),
            "checkpoint_sha256": sha(sorted(model_dir.glob("*.safetensors"))),
            "tokenizer_sha256": sha([p for p in [model_dir / "tokenizer.json"] if p.is_file()])}


def check_model(meta: dict, model_dir: str | Path) -> None:
    """InputError unless the kNN-LM datastore described by ``meta`` was built from the LM in ``model_dir``."""
    have = meta.get("model_fingerprint")
    if not have:
        raise InputError(f"datastore of {meta.get('model', 'an unknown model')} records no model fingerprint; "
                         "rebuild it with `anole ralm build knn` to score it")
    want = model_fingerprint(model_dir)
    for key in ("hidden_size", "tokenizer_sha256", "checkpoint_sha256"):
        if have.get(key) != want[key]:
            raise InputError(f"the datastore was built from another model than {model_dir}: {key} "
                             f"{have.get(key)} != {want[key]}; rebuild it with `anole ralm build knn --model "
                             f"{model_dir}`")


@dataclass
class Datastore:
    """A loaded datastore: its index and payload (chunk texts or next-token values)."""

    path: Path
    meta: dict
    index: IndexDir
    chunks: list[dict] | None = None
    values: np.ndarray | None = None

    def payload_of(self, ids: np.ndarray):
        """Chunk texts (type 1) or next tokens int64 (type 2) of result ids int64[nq, k]; -1 -> None / -1."""
        if self.values is not None:
            return np.where(ids >= 0, self.values[np.maximum(ids, 0)], -1)
        return [[self.chunks[i]["text"] if i >= 0 else None for i in row] for row in ids.tolist()]


def load_datastore(path: str | Path, shards: list[int] | None = None) -> Datastore:
    path = Path(path)
    meta_path = path / "datastore.json"
    if not meta_path.is_file():
        raise IndexFormatError(f"{path}: no datastore.json; build one with `anole ralm build`")
    meta = json.loads(meta_path.read_text())
    index = load_index(path / "index", shards=shards)
    ds = Datastore(path=path, meta=meta, index=index)
    if meta.get("kind") == "chunks":
        ds.chunks = [json.loads(line) for line in (path / "chunks.jsonl").read_text().splitlines() if line]
        count = len(ds.chunks)
    elif meta.get("kind") == "knn":
        ds.values = np.fromfile(path / "values.i64", dtype="<i8")
        count = len(ds.values)
    else:
        raise IndexFormatError(f"{meta_path}: unknown datastore kind {meta.get('kind')!r}")
    if count != index.ntotal:
        raise IndexFormatError(f"{path}: {count} payload entries for {index.ntotal} indexed keys")
    return ds
