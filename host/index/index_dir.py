"""The on-disk index directory (docs/index-format.md): faiss index, manifest and the kernel memory image."""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from host.spec.errors import IndexFormatError, InputError
from host.spec.reference import list_terms
from host.spec.scan_params import KSUB

COARSE_MARGIN = 8
"""Extra centroids faiss shortlists per query before the exact, batch-independent ranking."""

log = logging.getLogger(__name__)

FORMAT = "anole-index"
VERSION = 1


@dataclass(slots=True)
class Shard:
    """One memory node's slice of every IVF list.

    offsets: int64[nlist + 1], list c is codes[offsets[c]:offsets[c+1]]; codes: uint8[n, m]; ids: int64[n].
    """

    offsets: np.ndarray
    codes: np.ndarray
    ids: np.ndarray

    @property
    def nlist(self) -> int:
        return len(self.offsets) - 1

    @property
    def ntotal(self) -> int:
        return len(self.ids)

    def list(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= c < self.nlist:
            raise InputError(f"list id {c} out of range 0..{self.nlist - 1}")
        lo, hi = int(self.offsets[c]), int(self.offsets[c + 1])
        return self.codes[lo:hi], self.ids[lo:hi]

    def list_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class IndexDir:
    """A loaded index directory: coarse centroids float32[nlist, d], codebooks float32[m, 256, d/m], shards."""

    path: Path
    manifest: dict
    centroids: np.ndarray
    codebooks: np.ndarray
    shards: list[Shard] = field(default_factory=list)

    @property
    def d(self) -> int:
        return self.centroids.shape[1]

    @property
    def nlist(self) -> int:
        return self.centroids.shape[0]

    @property
    def m(self) -> int:
        return self.codebooks.shape[0]

    @property
    def ntotal(self) -> int:
        return int(self.manifest["ntotal"])

    @cached_property
    def lterms(self) -> np.ndarray:
        """Per-list table terms B (host.spec.reference.list_terms), computed once."""
        return list_terms(self.centroids, self.codebooks)

    def faiss_index(self):
        import faiss
        return faiss.read_index(str(self.path / "index.faiss"))

    @cached_property
    def _quantizer(self):
        import faiss
        quantizer = faiss.IndexFlatL2(self.d)
        quantizer.add(self.centroids)
        return quantizer

    def coarse_search(self, queries: np.ndarray, nprobe: int) -> np.ndarray:
        """Probed lists int64[nq, nprobe], nearest first; ties go to the lower list id.

        A query's lists never depend on the batch it arrives in (the coordinator batches queries as they
        come): faiss's IndexFlatL2 computes distances differently for batches of 20 or more queries (BLAS),
        which reorders near-ties. So faiss only shortlists ``nprobe + COARSE_MARGIN`` centroids, and the
        shortlist is ranked by squared distances computed one query at a time in a fixed order."""
        if not 1 <= nprobe <= self.nlist:
            raise InputError(f"nprobe must be in 1..{self.nlist} (nlist), not {nprobe}")
        q = np.ascontiguousarray(queries, dtype=np.float32)
        _, short = self._quantizer.search(q, min(self.nlist, nprobe + COARSE_MARGIN))
        diff = self.centroids[short] - q[:, None, :]
        dist = np.einsum("qcd,qcd->qc", diff, diff)
        order = np.lexsort((short, dist), axis=-1)[:, :nprobe]
        return np.take_along_axis(short, order, axis=1).astype(np.int64)


def export_index(index, out: str | Path, nshards: int, source: dict | None = None) -> Path:
    """Write a faiss IndexIVFPQ as an index directory split evenly over ``nshards`` shards.

    ``source`` (JSON-able) records where the vectors came from, e.g. the synthetic generator's arguments."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    out = Path(out)
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
    if not isinstance(ivf, faiss.IndexIVFPQ):
        raise InputError(f"expected an IndexIVFPQ, got {type(ivf).__name__}")
    if ivf.pq.nbits != 8 or not ivf.by_residual or ivf.metric_type != faiss.METRIC_L2:
        raise InputError("the kernel needs 8-bit codes, residual encoding and the L2 metric")
    if nshards < 1:
        raise InputError(f"shards must be >= 1, not {nshards}")
    d, nlist, m = ivf.d, ivf.nlist, ivf.pq.M
    out.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(out / "index.faiss"))
    centroids = ivf.quantizer.reconstruct_n(0, nlist).astype(np.float32)
    codebooks = faiss.vector_to_array(ivf.pq.centroids).astype(np.float32).reshape(m, KSUB, d // m)
    centroids.tofile(out / "centroids.f32")
    codebooks.tofile(out / "codebooks.f32")
    lists = [get_invlist(ivf.invlists, c) for c in range(nlist)]
    for s in range(nshards):
        sdir = out / f"shard_{s:03d}"
        sdir.mkdir(exist_ok=True)
        parts = [(ids[len(ids) * s // nshards: len(ids) * (s + 1) // nshards],
                  codes[len(ids) * s // nshards: len(ids) * (s + 1) // nshards]) for ids, codes in lists]
        offsets = np.zeros(nlist + 1, dtype=np.uint64)
        offsets[1:] = np.cumsum([len(i) for i, _ in parts])
        offsets.tofile(sdir / "offsets.u64")
        np.concatenate([c.reshape(-1, m) for _, c in parts] or [np.zeros((0, m), np.uint8)]).astype(np.uint8).tofile(sdir / "codes.u8")
        np.concatenate([i for i, _ in parts]).astype("<i8").tofile(sdir / "ids.i64")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "format": FORMAT, "version": VERSION, "metric": "L2", "by_residual": True, "nbits": 8,
        "d": d, "nlist": nlist, "m": m, "ntotal": int(ivf.ntotal), "nshards": nshards,
        "shards": [{"ntotal": int(np.fromfile(out / f"shard_{s:03d}/offsets.u64", np.uint64)[-1])} for s in range(nshards)],
        "source": source or {},
        "files": {f: {"bytes": (out / f).stat().st_size, "sha256": _sha256(out / f)} for f in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    log.info("exported %d vectors in %d lists over %d shards to %s", ivf.ntotal, nlist, nshards, out)
    return out


def load_index(path: str | Path, shards: list[int] | None = None, verify: bool = True) -> IndexDir:
    """Load and validate an index directory; ``shards`` selects which shards to map (default all)."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise IndexFormatError(f"{path}: no manifest.json; is this an index directory made by `anole index build`?")
    try:
        man = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise IndexFormatError(f"{mpath}: not an {FORMAT} manifest")
    if man.get("version") != VERSION:
        raise IndexFormatError(f"{mpath}: format version {man.get('version')!r}, this anole reads version "
                               f"{VERSION}; rebuild the index with `anole index build`")
    try:
        d, nlist, m, nshards = (int(man[k]) for k in ("d", "nlist", "m", "nshards"))
        files = man["files"]
        if len(man["shards"]) != nshards:
            raise ValueError(f"'shards' lists {len(man['shards'])} entries for nshards={nshards}")
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{mpath}: missing or bad field {e}") from None
    if d % m or nlist < 1 or nshards < 1:
        raise IndexFormatError(f"{mpath}: inconsistent d={d}, m={m}, nlist={nlist}, nshards={nshards}")
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            raise IndexFormatError(f"{path}: missing file {name}")
        if f.stat().st_size != meta["bytes"]:
            raise IndexFormatError(f"{f}: {f.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or replaced)")
        if verify and _sha256(f) != meta["sha256"]:
            raise IndexFormatError(f"{f}: checksum mismatch; the file is corrupt")
    centroids = _read(path, "centroids.f32", np.float32, (nlist, d))
    codebooks = _read(path, "codebooks.f32", np.float32, (m, KSUB, d // m))
    wanted = range(nshards) if shards is None else shards
    loaded = []
    for s in wanted:
        if not 0 <= s < nshards:
            raise InputError(f"shard {s} out of range 0..{nshards - 1}")
        shard = _load_shard(path, s, nlist, m)
        if shard.ntotal != int(man["shards"][s]["ntotal"]):
            raise IndexFormatError(f"{path}: shard {s} holds {shard.ntotal} codes, the manifest says "
                                   f"{man['shards'][s]['ntotal']}")
        loaded.append(shard)
    return IndexDir(path=path, manifest=man, centroids=centroids, codebooks=codebooks, shards=loaded)


def _load_shard(path: Path, s: int, nlist: int, m: int) -> Shard:
    sub = f"shard_{s:03d}"
    offsets = _read(path, f"{sub}/offsets.u64", np.uint64, (nlist + 1,)).astype(np.int64)
    n = int(offsets[-1])
    if offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise IndexFormatError(f"{path / sub}/offsets.u64: offsets are not a non-decreasing sequence from 0")
    codes = _read(path, f"{sub}/codes.u8", np.uint8, (n, m), mmap=True)
    ids = _read(path, f"{sub}/ids.i64", np.dtype("<i8"), (n,), mmap=True)
    return Shard(offsets=offsets, codes=codes, ids=ids)


def _read(path: Path, name: str, dtype, shape, mmap: bool = False) -> np.ndarray:
    f = path / name
    if not f.is_file():
        raise IndexFormatError(f"{path}: missing file {name}")
    want = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if f.stat().st_size != want:
        raise IndexFormatError(f"{f}: {f.stat().st_size} bytes, expected {want} for {np.dtype(dtype).name}{list(shape)}")
    if want == 0:
        return np.zeros(shape, dtype)
    if mmap:
        return np.memmap(f, dtype=dtype, mode="r", shape=shape)
    return np.fromfile(f, dtype=dtype).reshape(shape)


def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()
