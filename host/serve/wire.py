"""Retrieval messages on top of ``host.net``: the field maps of memory nodes and the coordinator.

Every parse_* function checks types, dtypes, shapes and ranges and raises ``InputError`` with the bad
value; the server turns that into an ``E_BAD_REQUEST`` error frame.  docs/protocol.md lists the fields.
"""
from __future__ import annotations

import hashlib

import numpy as np

from host.backends.base import ShardResult
from host.backends.local_search import SearchResult
from host.spec.errors import InputError

T_INFO = 16    # {} -> info map (role, fingerprint, shard, nshards, d, nlist, params, ...)
T_SCAN = 17    # memory node: scan one shard
T_STATS = 18   # {} -> counters
T_SEARCH = 19  # coordinator: full search


def index_fingerprint(manifest: dict) -> str:
    """Identity of an index: sha256 over the checksums of its centroids and codebooks and its shape."""
    files = manifest["files"]
    key = "|".join([files["centroids.f32"]["sha256"], files["codebooks.f32"]["sha256"],
                    *(str(manifest[k]) for k in ("d", "nlist", "m", "ntotal", "nshards"))])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _array(fields: dict, name: str, dtype, ndim: int) -> np.ndarray:
    a = fields.get(name)
    if not isinstance(a, np.ndarray):
        raise InputError(f"field {name!r} must be an array, not {type(a).__name__}")
    if a.dtype != np.dtype(dtype) or a.ndim != ndim:
        raise InputError(f"field {name!r} must be {np.dtype(dtype).name} with {ndim} dims, "
                         f"not {a.dtype.name}{list(a.shape)}")
    return a


def _int(fields: dict, name: str, lo: int, hi: int) -> int:
    v = fields.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InputError(f"field {name!r} must be an int in {lo}..{hi}, not {v!r}")
    return v


def _queries(fields: dict, d: int, max_nq: int) -> np.ndarray:
    q = _array(fields, "queries", np.float32, 2)
    if q.shape[1] != d:
        raise InputError(f"queries have dimension {q.shape[1]}, the index expects {d}")
    if not 1 <= q.shape[0] <= max_nq:
        raise InputError(f"a request carries 1..{max_nq} queries, not {q.shape[0]}")
    if not np.isfinite(q).all():
        raise InputError("queries contain non-finite values")
    return q


def scan_request(queries: np.ndarray, list_ids: np.ndarray, k: int) -> dict:
    """queries float32[nq, d], list_ids int64[nq, nprobe], k -> T_SCAN field map."""
    return {"queries": np.ascontiguousarray(queries, np.float32),
            "list_ids": np.ascontiguousarray(list_ids, np.int64), "k": int(k)}


def parse_scan_request(fields: dict, d: int, nlist: int, kmax: int, max_nq: int):
    """-> (queries float32[nq, d], list_ids int64[nq, nprobe], k); InputError on anything else."""
    q = _queries(fields, d, max_nq)
    lists = _array(fields, "list_ids", np.int64, 2)
    if lists.shape[0] != q.shape[0] or not 1 <= lists.shape[1] <= nlist:
        raise InputError(f"list_ids must be int64[nq={q.shape[0]}, 1..{nlist}], not {list(lists.shape)}")
    bad = (lists < 0) | (lists >= nlist)
    if bad.any():
        raise InputError(f"unknown list id {int(lists[bad][0])}; the index has lists 0..{nlist - 1}")
    ordered = np.sort(lists, axis=1)
    twice = ordered[:, 1:] == ordered[:, :-1]
    if twice.any():
        row = int(np.flatnonzero(twice.any(axis=1))[0])
        raise InputError(f"list_ids row {row} probes list {int(ordered[row, 1:][twice[row]][0])} twice; "
                         "each list at most once per query")
    return q, lists, _int(fields, "k", 1, kmax)


def scan_response(res: ShardResult, k: int, scan_s: float, codes: int) -> dict:
    return {"dist": res.dist[:, :k], "ids": res.ids[:, :k], "scale": res.scale,
            "scan_s": float(scan_s), "codes": int(codes)}


def parse_scan_response(fields: dict, nq: int, k: int) -> tuple[ShardResult, float]:
    """-> (ShardResult with dist/ids int64[nq, k] and scale float32[nq], the node's scan seconds)."""
    dist, ids = _array(fields, "dist", np.int64, 2), _array(fields, "ids", np.int64, 2)
    scale = _array(fields, "scale", np.float32, 1)
    if dist.shape != (nq, k) or ids.shape != (nq, k) or scale.shape != (nq,):
        raise InputError(f"scan response shapes {dist.shape}, {ids.shape}, {scale.shape}; expected ({nq}, {k})")
    return ShardResult(dist=dist, ids=ids, scale=scale), float(fields.get("scan_s", 0.0))


def search_request(queries: np.ndarray, nprobe: int, k: int) -> dict:
    return {"queries": np.ascontiguousarray(queries, np.float32), "nprobe": int(nprobe), "k": int(k)}


def parse_search_request(fields: dict, d: int, nlist: int, kmax: int, max_nq: int):
    """-> (queries float32[nq, d], nprobe, k)."""
    return _queries(fields, d, max_nq), _int(fields, "nprobe", 1, nlist), _int(fields, "k", 1, kmax)


def search_response(res: SearchResult) -> dict:
    return {"ids": res.ids, "dist": res.dist, "distances": res.distances,
            "timings": {k: float(v) for k, v in res.timings.items()}}


def parse_search_response(fields: dict) -> SearchResult:
    ids, dist = _array(fields, "ids", np.int64, 2), _array(fields, "dist", np.int64, 2)
    distances = _array(fields, "distances", np.float32, 2)
    if not ids.shape == dist.shape == distances.shape:
        raise InputError(f"search response shapes differ: {ids.shape}, {dist.shape}, {distances.shape}")
    return SearchResult(ids=ids.copy(), distances=distances.copy(), dist=dist.copy(),
                        timings=dict(fields.get("timings") or {}))
