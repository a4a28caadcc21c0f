"""The on-disk index directory (docs/index-format.md): faiss index, manifest and the kernel memory image."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from host.index import faiss_io, writer
from host.index.datasets import check_vectors
from host.index.transform import PreTransform
from host.spec import reference
from host.spec.errors import IndexFormatError, InputError
from host.spec.scan_params import KSUB, ScanParams

COARSE_MARGIN = 8
"""Extra centroids faiss shortlists per query before the exact, batch-independent ranking."""

log = logging.getLogger(__name__)


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
    pretransform: PreTransform = field(default_factory=PreTransform)

    @property
    def d(self) -> int:
        """Dimension of the IVF-PQ (of transformed vectors: what memory nodes receive)."""
        return self.centroids.shape[1]

    @property
    def d_in(self) -> int:
        """Dimension of the user's vectors and queries (before the pre-transform)."""
        return self.pretransform.d_in(self.d)

    @property
    def metric(self) -> str:
        """The kernel metric: "L2" or "IP" (cosine indexes are IP behind a normalize step)."""
        return self.manifest.get("metric", "L2")

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
        """Per-list table terms B (host.spec.reference.list_terms), computed once; IP tables have none
        (float32[1, m, 256] of zeros, never read)."""
        if self.metric == "IP":
            return np.zeros((1, self.m, KSUB), np.float32)
        return reference.list_terms(self.centroids, self.codebooks)

    def faiss_index(self):
        """The faiss index of index.faiss; an out-of-core build stores it empty, so fill it from the shards."""
        import faiss
        index = faiss.read_index(str(self.path / "index.faiss"))
        if index.ntotal == 0 and self.ntotal and len(self.shards) == int(self.manifest["nshards"]):
            faiss_io.fill(index, self.shards)
        return index

    def coarse_quantizer(self):
        """A faiss flat index over the centroids, with the index's metric (the coordinator's coarse search)."""
        import faiss
        quantizer = (faiss.IndexFlatIP if self.metric == "IP" else faiss.IndexFlatL2)(self.d)
        quantizer.add(self.centroids)
        return quantizer

    @cached_property
    def _quantizer(self):
        return self.coarse_quantizer()

    def prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        """Check queries float[nq, d_in] and apply the pre-transform: float32[nq, d], once per query."""
        queries = check_vectors(queries, self.d_in, "queries")
        return self.pretransform.apply(queries) if self.pretransform.steps else queries

    def dequantize(self, queries: np.ndarray, lists: np.ndarray, dist: np.ndarray, scale: np.ndarray,
                   params: ScanParams) -> np.ndarray:
        """float32[nq, k] distances of merged integer results: squared L2, or inner products (IP) of the
        transformed queries float32[nq, d] whose probed lists were ``lists`` int64[nq, nprobe]."""
        offset = None
        if self.metric == "IP":
            offset = reference.ip_offsets(queries, lists, self.centroids, self.codebooks)
        return reference.dequantize(dist, scale, params, offset)

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
        if self.metric == "IP":
            dist = -np.einsum("qcd,qd->qc", self.centroids[short], q)
        else:
            diff = self.centroids[short] - q[:, None, :]
            dist = np.einsum("qcd,qcd->qc", diff, diff)
        order = np.lexsort((short, dist), axis=-1)[:, :nprobe]
        return np.take_along_axis(short, order, axis=1).astype(np.int64)


def export_index(index, out: str | Path, nshards: int, source: dict | None = None) -> Path:
    """Write a faiss IndexIVFPQ (optionally behind an IndexPreTransform; faiss_io.unwrap) as an index directory
    split over ``nshards`` shards (writer.shard_bounds); the manifest is written last.

    ``source`` (JSON-able) records where the vectors came from, e.g. the synthetic generator's arguments."""
    from faiss.contrib.inspect_tools import get_invlist

    out = Path(out)
    ivf, _, _ = faiss_io.unwrap(index)
    if nshards < 1:
        raise InputError(f"shards must be >= 1, not {nshards}")
    (out / "manifest.json").unlink(missing_ok=True)
    fields = writer.write_common(out, index)
    nlist, m = ivf.nlist, ivf.pq.M
    lists = [get_invlist(ivf.invlists, c) for c in range(nlist)]
    bounds = writer.shard_bounds([len(ids) for ids, _ in lists], nshards)
    for s in range(nshards):
        sdir = out / f"shard_{s:03d}"
        sdir.mkdir(exist_ok=True)
        parts = [(ids[bounds[s, c]: bounds[s + 1, c]], codes.reshape(-1, m)[bounds[s, c]: bounds[s + 1, c]])
                 for c, (ids, codes) in enumerate(lists)]
        with writer.disk_errors(out):
            writer.shard_offsets(bounds, s).tofile(sdir / "offsets.u64")
            np.concatenate([c for _, c in parts] or [np.zeros((0, m), np.uint8)]).astype(np.uint8).tofile(sdir / "codes.u8")
            np.concatenate([i for i, _ in parts] or [np.zeros(0, np.int64)]).astype("<i8").tofile(sdir / "ids.i64")
    writer.write_manifest(out, fields, list((bounds[1:] - bounds[:-1]).sum(axis=1)), source)
    log.info("exported %d vectors in %d lists over %d shards to %s", ivf.ntotal, nlist, nshards, out)
    return out


def load_index(path: str | Path, shards: list[int] | None = None, verify: bool = True) -> IndexDir:
    """Load and validate an index directory; ``shards`` selects which shards to map (default all)."""
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file() and (path / ".build").is_dir():
        raise IndexFormatError(f"{path}: an interrupted build (no manifest.json); run the same `anole index build` "
                               "again to resume it")
    if not mpath.is_file():
        raise IndexFormatError(f"{path}: no manifest.json; is this an index directory made by `anole index build`?")
    try:
        man = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(man, dict) or man.get("format") != writer.FORMAT:
        raise IndexFormatError(f"{mpath}: not an {writer.FORMAT} manifest")
    if man.get("version") not in writer.READS:
        raise IndexFormatError(f"{mpath}: format version {man.get('version')!r}, this anole reads versions "
                               f"{writer.READS}; rebuild the index with `anole index build`")
    if man.get("metric", "L2") not in reference.METRICS:
        raise IndexFormatError(f"{mpath}: metric {man.get('metric')!r}, not one of {reference.METRICS}")
    try:
        d, nlist, m, nshards = (int(man[k]) for k in ("d", "nlist", "m", "nshards"))
        files = man["files"]
        if len(man["shards"]) != nshards:
            raise ValueError(f"'shards' lists {len(man['shards'])} entries for nshards={nshards}")
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{mpath}: missing or bad field {e}") from None
    if d % m or nlist < 1 or nshards < 1:
        raise IndexFormatError(f"{mpath}: inconsistent d={d}, m={m}, nlist={nlist}, nshards={nshards}")
    wanted = range(nshards) if shards is None else shards
    mine = {f"shard_{s:03d}" for s in wanted}
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            raise IndexFormatError(f"{path}: missing file {name}")
        if f.stat().st_size != meta["bytes"]:
            raise IndexFormatError(f"{f}: {f.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or replaced)")
        ours = not name.startswith("shard_") or name.split("/")[0] in mine
        if verify and ours and writer.sha256(f) != meta["sha256"]:
            raise IndexFormatError(f"{f}: checksum mismatch; the file is corrupt")
    centroids = _read(path, "centroids.f32", np.float32, (nlist, d))
    codebooks = _read(path, "codebooks.f32", np.float32, (m, KSUB, d // m))
    try:
        pretransform = PreTransform.load(path, man.get("pretransform", []))
    except (KeyError, TypeError, ValueError) as e:
        raise IndexFormatError(f"{mpath}: bad pretransform entry ({e})") from None
    loaded = []
    for s in wanted:
        if not 0 <= s < nshards:
            raise InputError(f"shard {s} out of range 0..{nshards - 1}")
        shard = _load_shard(path, s, nlist, m)
        if shard.ntotal != int(man["shards"][s]["ntotal"]):
            raise IndexFormatError(f"{path}: shard {s} holds {shard.ntotal} codes, the manifest says "
                                   f"{man['shards'][s]['ntotal']}")
        loaded.append(shard)
    return IndexDir(path=path, manifest=man, centroids=centroids, codebooks=codebooks, shards=loaded,
                    pretransform=pretransform)


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
