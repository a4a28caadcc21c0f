"""Out-of-core, resumable index build: train on a sample, encode chunk by chunk, stream codes into shards.

Work files live in ``OUT/.build/``: the settings (state.json), the trained index (trained.faiss) and, per
chunk, its list numbers, codes and ids sorted by list (chunk_NNNNN.*), each chunk made visible by renaming
its ``.done`` marker last, so after an interruption a chunk is either complete or redone. ``finalize``
then scatters the chunks into the shard files (writer.shard_bounds, the same split as an in-memory export)
through memory maps, writes the manifest last and removes ``.build``. Peak memory: one chunk, the training
sample and the per-list counters, never the whole data set.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from host.index import builder, faiss_io, writer
from host.spec.errors import InputError

log = logging.getLogger(__name__)

WORK = ".build"


def build_index(src, cfg: builder.BuildConfig, out: str | Path, nshards: int, source: dict | None = None,
                encode=None, train=None) -> Path:
    """Build an index directory from ``src`` (array-like [n, d], host.index.sources) out of core; resumes an
    interrupted build of the same settings in ``out``.  ``encode(index, spans)`` yields ``(i, lists, codes)``
    for the chunks ``spans`` = [(i, lo, hi)], in any order (default: here, one chunk at a time; the Ray build
    spreads them over a cluster); ``train(sample, cfg)`` the trained, empty index (default builder.train_index)."""
    out = Path(out)
    if nshards < 1:
        raise InputError(f"shards must be >= 1, not {nshards}")
    if (out / "manifest.json").exists():
        raise InputError(f"{out} already holds a complete index; remove it or choose another --out")
    n, d = src.shape
    state = {"config": {k: getattr(cfg, k) for k in cfg.__slots__ if k != "threads"},
             "n": int(n), "d": int(d), "nshards": nshards, "source": source or {}}
    work = _work_dir(out, state)
    writer.check_free_space(out, 2 * n * ((64 if cfg.factory else cfg.m) + 12))
    index = _trained(work, src, cfg, train or builder.train_index)
    ivf, _, _ = faiss_io.unwrap(index)
    nchunks = -(-n // cfg.chunk_size)
    todo = [i for i in range(nchunks) if not (work / f"chunk_{i:05d}.done").exists()]
    if len(todo) < nchunks:
        log.info("resuming: %d of %d chunks already written", nchunks - len(todo), nchunks)
    spans = [(i, i * cfg.chunk_size, min(n, (i + 1) * cfg.chunk_size)) for i in todo]
    chunks = (encode or _encode_here(src))(index, spans)
    for i, lists, codes in tqdm(chunks, total=len(spans), desc="encode", unit="chunk", disable=None):
        lo = i * cfg.chunk_size
        store_chunk(work, i, ivf.nlist, lists, codes, np.arange(lo, lo + len(lists)))
    finalize(out, index, nchunks, nshards, source)
    return out


def _encode_here(src):
    def encode(index, spans):
        for i, lo, hi in spans:
            yield (i, *builder.encode_chunk(index, np.asarray(src[lo:hi])))
    return encode


def store_chunk(work: Path, i: int, nlist: int, lists: np.ndarray, codes: np.ndarray, ids: np.ndarray) -> None:
    """Write one encoded chunk sorted by list, the .done marker renamed in last."""
    order = np.argsort(lists, kind="stable")
    with writer.disk_errors(work):
        for name, arr in (("lists.i32", lists[order].astype("<i4")), ("codes.u8", codes[order]),
                          ("ids.i64", np.asarray(ids, "<i8")[order]),
                          ("counts.i64", np.bincount(lists, minlength=nlist).astype("<i8"))):
            arr.tofile(work / f"chunk_{i:05d}.{name}.tmp")
            os.replace(work / f"chunk_{i:05d}.{name}.tmp", work / f"chunk_{i:05d}.{name}")
        (work / f"chunk_{i:05d}.done.tmp").write_text(f"{len(lists)}\n")
        os.replace(work / f"chunk_{i:05d}.done.tmp", work / f"chunk_{i:05d}.done")


def finalize(out: Path, index, nchunks: int, nshards: int, source: dict | None) -> Path:
    """Scatter the chunks of ``out/.build`` into shard files and write the manifest (last); remove .build."""
    work = out / WORK
    ivf, _, _ = faiss_io.unwrap(index)
    nlist, m = ivf.nlist, ivf.pq.M
    sizes = sum(np.fromfile(work / f"chunk_{i:05d}.counts.i64", "<i8") for i in range(nchunks))
    bounds = writer.shard_bounds(sizes, nshards)
    offsets = [writer.shard_offsets(bounds, s).astype(np.int64) for s in range(nshards)]
    shards = [_open_shard(out / f"shard_{s:03d}", offsets[s], m) for s in range(nshards)]
    seen = np.zeros(nlist, np.int64)
    with writer.disk_errors(out):
        for i in tqdm(range(nchunks), desc="shards", unit="chunk", disable=None):
            lists = np.fromfile(work / f"chunk_{i:05d}.lists.i32", "<i4").astype(np.int64)
            codes = np.fromfile(work / f"chunk_{i:05d}.codes.u8", np.uint8).reshape(-1, m)
            ids = np.fromfile(work / f"chunk_{i:05d}.ids.i64", "<i8")
            counts = np.fromfile(work / f"chunk_{i:05d}.counts.i64", "<i8")
            start = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rank = seen[lists] + np.arange(len(lists)) - start[lists]      # position of each entry in its list
            shard = np.zeros(len(lists), np.int64)
            for s in range(1, nshards):
                shard += rank >= bounds[s, lists]
            for s, (sc, si) in enumerate(shards):
                sel = shard == s
                pos = offsets[s][lists[sel]] + rank[sel] - bounds[s, lists[sel]]
                sc[pos], si[pos] = codes[sel], ids[sel]
            seen += counts
        for s, (sc, si) in enumerate(shards):
            sc.flush()
            si.flush()
            offsets[s].astype("<u8").tofile(out / f"shard_{s:03d}" / "offsets.u64")
        del shards
        fields = writer.write_common(out, index)       # trained and empty: the codes live in the shards
    ntotal = [int(o[-1]) for o in offsets]
    writer.write_manifest(out, fields, ntotal, source)
    shutil.rmtree(work)
    log.info("built %d vectors in %d lists over %d shards in %s", sum(ntotal), nlist, nshards, out)
    return out


def _open_shard(sdir: Path, offsets: np.ndarray, m: int):
    sdir.mkdir(parents=True, exist_ok=True)
    n = int(offsets[-1])
    if n == 0:
        for name in ("codes.u8", "ids.i64"):
            (sdir / name).write_bytes(b"")
        return np.zeros((0, m), np.uint8), np.zeros(0, np.int64)
    return (np.memmap(sdir / "codes.u8", np.uint8, "w+", shape=(n, m)),
            np.memmap(sdir / "ids.i64", "<i8", "w+", shape=(n,)))


def _work_dir(out: Path, state: dict) -> Path:
    """out/.build holding ``state``; a leftover of different settings is refused, not mixed in."""
    work = out / WORK
    if (work / "state.json").exists():
        old = json.loads((work / "state.json").read_text())
        if old != json.loads(json.dumps(state)):
            raise InputError(f"{out} holds an interrupted build with other settings ({work}/state.json); "
                             "rerun with those settings to resume, or delete the directory")
        return work
    work.mkdir(parents=True, exist_ok=True)
    (work / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    return work


def _trained(work: Path, src, cfg: builder.BuildConfig, train):
    import faiss

    path = work / "trained.faiss"
    if path.exists():
        return faiss.read_index(str(path))
    index = train(builder.training_sample(src, cfg), cfg)
    with writer.disk_errors(work):
        faiss.write_index(index, str(work / "trained.faiss.tmp"))
        os.replace(work / "trained.faiss.tmp", path)
    return index
