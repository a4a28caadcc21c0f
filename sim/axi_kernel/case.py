"""Stimulus and golden results of the AXI kernel bench: a real index image and launches (host side).

`make_case` runs in the pytest (or script) process, before the simulator starts: it builds a small
IVF-PQ index, lays it out with host.spec.layout exactly as the driver does, and stores every launch
(tables, descriptors, expected results from host.spec.reference.scan_query) in one .npz for the bench.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered
from host.index.index_dir import export_index, load_index
from host.spec import reference
from host.spec.layout import KernelLayout
from host.spec.scan_params import KSUB, ScanParams

NBASE = 1000
NLIST = 16


def _launch(params: ScanParams, shard, first: np.ndarray, qt: np.ndarray, probes: list[list[tuple[int, int]]]):
    """qt uint16[nq, nprobe, m, 256]; probes[q] = [(list c, codes n <= len c), ...] -> launch arrays."""
    lay = KernelLayout(params)
    nq, nprobe = qt.shape[:2]
    desc = np.zeros((nq, nprobe), np.uint64)
    dist = np.zeros((nq, params.k), np.int64)
    ids = np.zeros((nq, params.k), np.int64)
    for q, row in enumerate(probes):
        lists = []
        for p, (c, n) in enumerate(row):
            codes, cids = shard.list(c)
            assert n <= len(codes)
            lists.append((codes[:n], cids[:n]))
            desc[q, p] = np.uint64(first[c]) | np.uint64(n) << np.uint64(32)
        dist[q], ids[q] = reference.scan_query(params, qt[q], lists)
    return {"tables": lay.tables(qt), "lists": desc, "dist": dist, "ids": ids}


def make_case(params: ScanParams, out: str | Path, *, nq: int = 6, nprobe: int = 3, seed: int = 0) -> Path:
    """Write `<out>/case.npz`: the shard image (codes, ids) and launches L0.. (tables, lists, dist, ids).

    L0: `nq` real queries probing their `nprobe` nearest lists (the first query probes one list twice).
    L1: edge cases: an empty list, a list shorter than `lanes`, maximum (all-equal) table entries, K
    larger than the candidates, a list ending on a partial beat. L2: nq = 0. L3: nprobe = 0 (K empty slots).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = 4 * params.m
    x = synthetic_clustered(NBASE + nq, d, seed=seed, clusters=NLIST)
    index = load_index(export_index(build_ivfpq(x[:NBASE], BuildConfig(nlist=NLIST, m=params.m, seed=seed)),
                                    out / "index", nshards=1))
    shard = index.shards[0]
    sizes = shard.list_sizes()
    lay = KernelLayout(params)
    codes, ids, first = lay.shard_image(shard)
    arrays = {"codes": codes, "ids": ids}

    queries = x[NBASE:]
    lists = index.coarse_search(queries, nprobe)
    lists[0, 1] = lists[0, 0]
    ft = reference.float_tables(queries, lists, index.centroids, index.codebooks, index.lterms)
    qt, _ = reference.quantize_tables(ft, params.lut_bits)
    launches = [_launch(params, shard, first, qt, [[(int(c), int(sizes[c])) for c in row] for row in lists])]

    small, big = int(np.argmin(sizes)), int(np.argmax(sizes))
    edge_qt = rng.integers(0, params.lut_max, (2, 3, params.m, KSUB), dtype=np.uint16, endpoint=True)
    edge_qt[0] = params.lut_max
    partial = max(1, sizes[big] - sizes[big] % params.lanes - 1) if params.lanes > 1 else sizes[big]
    launches.append(_launch(params, shard, first, edge_qt, [
        [(small, 0), (big, min(params.lanes - 1, sizes[big]) or 1), (small, int(sizes[small]))],
        [(big, int(sizes[big])), (big, int(partial)), (small, 0)]]))
    empty = np.zeros((0, nprobe, params.m, KSUB), np.uint16)
    launches.append(_launch(params, shard, first, empty, []))
    launches.append(_launch(params, shard, first, np.zeros((1, 0, params.m, KSUB), np.uint16), [[]]))
    for i, launch in enumerate(launches):
        arrays.update({f"L{i}_{k}": v for k, v in launch.items()})
    path = out / "case.npz"
    np.savez(path, nlaunch=len(launches), **arrays)
    return path


def make_throughput_case(params: ScanParams, out: str | Path, *, nq: int = 4, nprobe: int = 4,
                         lengths: tuple[int, int] = (1000, 2000), seed: int = 0) -> Path:
    """Write `<out>/case.npz` with one launch of long lists for the throughput mode of the bench.

    A random shard image of `nq * nprobe` lists of `lengths[0]..lengths[1]` codes (random codes, ids
    and tables, lists at increasing beats, so the codes and ids readers stream without locality
    effects); one launch of `nq` queries probing `nprobe` of them each. Same .npz keys as `make_case`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lay = KernelLayout(params)
    sizes = rng.integers(lengths[0], lengths[1], nq * nprobe, endpoint=True)
    beats = -(-sizes // params.lanes)
    first = np.concatenate([[0], np.cumsum(beats)[:-1]])
    nbeats = int(beats.sum())
    codes = rng.integers(0, KSUB, (nbeats * params.lanes, params.m), dtype=np.uint8)
    ids = rng.integers(0, 1 << min(params.id_bits, 62), nbeats * params.lanes).astype(lay.id_dtype)
    qt = rng.integers(0, params.lut_max, (nq, nprobe, params.m, KSUB), dtype=np.uint16, endpoint=True)
    desc = np.zeros((nq, nprobe), np.uint64)
    dist = np.zeros((nq, params.k), np.int64)
    res_ids = np.zeros((nq, params.k), np.int64)
    for q in range(nq):
        lists = []
        for p in range(nprobe):
            c = q * nprobe + p
            lo = int(first[c]) * params.lanes
            lists.append((codes[lo:lo + sizes[c]], ids[lo:lo + sizes[c]].astype(np.int64)))
            desc[q, p] = np.uint64(first[c]) | np.uint64(sizes[c]) << np.uint64(32)
        dist[q], res_ids[q] = reference.scan_query(params, qt[q], lists)
    path = out / "case.npz"
    np.savez(path, nlaunch=1, codes=codes.reshape(nbeats, params.lanes * params.m), ids=ids,
             L0_tables=lay.tables(qt), L0_lists=desc, L0_dist=dist, L0_ids=res_ids)
    return path
