"""Writing index directories: the shared files, the shard split rule, and the manifest (written last).

Everything but manifest.json is written first; the manifest, with every file's size and SHA-256, is
written to a temporary name and renamed into place, so a directory whose writing stopped half-way (an
interrupted build, a full disk) has no manifest and never loads as if it were complete.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from host.index import faiss_io
from host.spec.errors import InputError

FORMAT = "anole-index"
VERSION = 2
READS = (1, 2)
"""Version 1 (L2, no pre-transform) is read as before; version 2 adds ``metric`` IP and ``pretransform``."""


def shard_bounds(sizes: np.ndarray, nshards: int) -> np.ndarray:
    """Where each list is cut: int64[nshards + 1, nlist]; shard S gets entries bounds[S, c] .. bounds[S+1, c]-1
    of list c (in insertion order), i.e. floor(n*S/N) .. floor(n*(S+1)/N) - 1."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return (sizes[None, :] * np.arange(nshards + 1, dtype=np.int64)[:, None]) // nshards


def shard_offsets(bounds: np.ndarray, s: int) -> np.ndarray:
    """offsets uint64[nlist + 1] of shard s, from shard_bounds."""
    offsets = np.zeros(bounds.shape[1] + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum(bounds[s + 1] - bounds[s])
    return offsets


def write_common(out: Path, index) -> dict:
    """Write index.faiss, centroids.f32, codebooks.f32 and pre-transform matrices of a faiss index (checked by
    faiss_io.unwrap); return the manifest fields that describe it."""
    import faiss

    ivf, transform, metric = faiss_io.unwrap(index)
    out.mkdir(parents=True, exist_ok=True)
    with disk_errors(out):
        faiss.write_index(index, str(out / "index.faiss"))
        centroids, codebooks = faiss_io.parts(ivf)
        centroids.tofile(out / "centroids.f32")
        codebooks.tofile(out / "codebooks.f32")
        pre = transform.save(out)
    return {"metric": metric, "by_residual": True, "nbits": 8, "d": ivf.d, "d_in": transform.d_in(ivf.d),
            "nlist": ivf.nlist, "m": ivf.pq.M, "pretransform": pre}


def write_manifest(out: Path, fields: dict, shard_ntotal: list[int], source: dict | None) -> Path:
    """Checksum every file under ``out`` and write manifest.json atomically, last."""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and not p.name.startswith("manifest.json") and not p.relative_to(out).parts[0].startswith("."))
    manifest = {"format": FORMAT, "version": VERSION, **fields, "ntotal": int(sum(shard_ntotal)),
                "nshards": len(shard_ntotal), "shards": [{"ntotal": int(n)} for n in shard_ntotal],
                "source": source or {},
                "files": {f: {"bytes": (out / f).stat().st_size, "sha256": sha256(out / f)} for f in files}}
    tmp = out / "manifest.json.tmp"
    with disk_errors(out):
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, out / "manifest.json")
    return out


def sha256(f: Path) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def disk_errors(out: Path):
    """Turns a full disk (ENOSPC, EDQUOT) while writing under ``out`` into a one-line InputError."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise InputError(f"{out}: disk full while writing ({_free_bytes(out) / 2**30:.1f} GiB free); the index is "
                         "incomplete (no manifest): free space and run the build again to resume") from None


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def check_free_space(out: Path, need: int) -> None:
    """Refuse up front when the disk holding ``out`` has less than ``need`` bytes free."""
    free = _free_bytes(out)
    if free < need:
        raise InputError(f"{out}: the build needs about {need / 2**30:.1f} GiB of disk, {free / 2**30:.1f} GiB are free")
