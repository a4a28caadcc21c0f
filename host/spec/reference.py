"""Integer IVF-PQ reference model: the bit-exact definition of what every backend and kernel computes.

design.md section 2. For a query x and a probed list c the float table is

    T[m][k] = || (x - C[c])_m - P[m][k] ||^2
            = (A[c][m] + B[c][m][k]) + D[m][k]          (evaluated in exactly this order, float32)

    A[c][m]    = sum_j (x_mj - C[c]_mj)^2               residual norm of sub-vector m
    B[c][m][k] = sum_j P_mkj^2 + 2 * sum_j C[c]_mj P_mkj   per list, independent of the query
    D[m][k]    = -2 * sum_j x_mj P_mkj                  per query, independent of the list

Every sum runs sequentially over j in float32 (no FMA), so any implementation that keeps this order
reproduces T bit for bit.  Negative rounding residue is clipped to 0.  Per query, over all its probed
lists, s = float32(2**b - 1) / max(T) (s = 1 when max(T) == 0) and Q = rint(T * s) in float32 (round
half to even), an unsigned b-bit integer.  The distance of a code is the sum of its m entries, and
results sort by the key (distance, id) ascending.  Slots beyond the candidates hold id -1 and the
distance ``ScanParams``-specific sentinel ``empty_dist(params)``.
"""
from __future__ import annotations

import numpy as np

from host.spec.scan_params import KSUB, ScanParams


def empty_dist(params: ScanParams) -> int:
    """Distance of an empty result slot: all ones in ``dist_bits``, above any real distance."""
    return (1 << params.dist_bits) - 1


def _seq_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum over the last axis of a*b, sequentially in float32 (the contract's summation order)."""
    acc = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=np.float32)
    for j in range(a.shape[-1]):
        acc += a[..., j] * b[..., j]
    return acc


def _seq_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    acc = np.zeros(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), dtype=np.float32)
    for j in range(a.shape[-1]):
        diff = a[..., j] - b[..., j]
        acc += diff * diff
    return acc


def split_sub(vectors: np.ndarray, m: int) -> np.ndarray:
    """float32[..., d] -> float32[..., m, d/m]."""
    d = vectors.shape[-1]
    return np.ascontiguousarray(vectors, dtype=np.float32).reshape(*vectors.shape[:-1], m, d // m)


def list_terms(centroids: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """B: float32[nlist, m, 256] from centroids float32[nlist, d] and codebooks float32[m, 256, dsub]."""
    m = codebooks.shape[0]
    c = split_sub(centroids, m)[:, :, None, :]                 # [nlist, m, 1, dsub]
    p = codebooks.astype(np.float32, copy=False)[None]         # [1, m, 256, dsub]
    norms = _seq_dot(p, p)                                     # [1, m, 256]
    cross = _seq_dot(c, p)                                     # [nlist, m, 256]
    return norms + np.float32(2) * cross


def query_terms(queries: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    """D: float32[nq, m, 256] for queries float32[nq, d]."""
    m = codebooks.shape[0]
    x = split_sub(queries, m)[:, :, None, :]
    return np.float32(-2) * _seq_dot(x, codebooks[None].astype(np.float32, copy=False))


def residual_norms(queries: np.ndarray, centroids: np.ndarray, list_ids: np.ndarray, m: int) -> np.ndarray:
    """A: float32[nq, nprobe, m] for list_ids int[nq, nprobe]."""
    x = split_sub(queries, m)[:, None]                         # [nq, 1, m, dsub]
    c = split_sub(centroids, m)[list_ids]                      # [nq, nprobe, m, dsub]
    return _seq_sqdist(x, c)


def float_tables(queries, list_ids, centroids, codebooks, lterms=None) -> np.ndarray:
    """T: float32[nq, nprobe, m, 256], clipped at 0."""
    m = codebooks.shape[0]
    if lterms is None:
        lterms = list_terms(centroids, codebooks)
    a = residual_norms(queries, centroids, list_ids, m)[..., None]   # [nq, nprobe, m, 1]
    t = (a + lterms[list_ids]) + query_terms(queries, codebooks)[:, None]
    return np.maximum(t, np.float32(0))


def table_scales(tables: np.ndarray, lut_bits: int) -> np.ndarray:
    """s: float32[nq] = (2**b - 1) / max over the query's tables (1 where that max is 0)."""
    tmax = tables.reshape(tables.shape[0], -1).max(axis=1)
    scale = np.ones_like(tmax)
    pos = tmax > 0
    scale[pos] = np.float32((1 << lut_bits) - 1) / tmax[pos]
    return scale.astype(np.float32)


def quantize_tables(tables: np.ndarray, lut_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """T float32[nq, nprobe, m, 256] -> (Q uint16[nq, nprobe, m, 256], s float32[nq])."""
    scale = table_scales(tables, lut_bits)
    q = np.rint(tables * scale[:, None, None, None])
    q = np.minimum(q, np.float32((1 << lut_bits) - 1))
    return q.astype(np.uint16), scale


def adc_distances(table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Integer ADC: table uint16[m, 256], codes uint8[n, m] -> int64[n] = sum_m table[m, codes[:, m]]."""
    m = table.shape[0]
    return table.astype(np.int64)[np.arange(m)[None, :], codes.astype(np.intp)].sum(axis=1)


def select_topk(dist: np.ndarray, ids: np.ndarray, params: ScanParams) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (dist, id) keys, ascending; padded with (empty_dist, -1)."""
    order = np.lexsort((ids, dist))[: params.k]
    out_d = np.full(params.k, empty_dist(params), dtype=np.int64)
    out_i = np.full(params.k, -1, dtype=np.int64)
    out_d[: order.size] = dist[order]
    out_i[: order.size] = ids[order]
    return out_d, out_i


def scan_query(params: ScanParams, tables: np.ndarray, lists) -> tuple[np.ndarray, np.ndarray]:
    """What the kernel computes for one query.

    tables: uint16[nprobe, m, 256] quantized; lists: one (codes uint8[n, m], ids int64[n]) per probe.
    Returns (dist int64[k], ids int64[k]).
    """
    if tables.shape[1:] != (params.m, KSUB):
        raise ValueError(f"tables must be [nprobe, {params.m}, {KSUB}], not {list(tables.shape)}")
    if len(lists) != tables.shape[0]:
        raise ValueError(f"{tables.shape[0]} tables but {len(lists)} lists")
    dists = [adc_distances(t, codes) for t, (codes, _) in zip(tables, lists)]
    all_ids = [np.asarray(ids, dtype=np.int64) for _, ids in lists]
    if not dists:
        return select_topk(np.zeros(0, np.int64), np.zeros(0, np.int64), params)
    return select_topk(np.concatenate(dists), np.concatenate(all_ids), params)


def merge_topk(params: ScanParams, dists: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard results int64[nshard, nq, k] into int64[nq, k] by the key (dist, id).

    Empty slots carry (empty_dist, -1) and sort after every real candidate."""
    nshard, nq, k = dists.shape
    d = dists.transpose(1, 0, 2).reshape(nq, nshard * k)
    i = ids.transpose(1, 0, 2).reshape(nq, nshard * k)
    order = np.lexsort((i, d), axis=-1)[:, : params.k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)


def dequantize(dist: np.ndarray, scale: np.ndarray, params: ScanParams) -> np.ndarray:
    """Integer distances int64[nq, k] -> float32 approximations of squared L2; inf for empty slots."""
    out = dist.astype(np.float32) / scale[:, None]
    out[dist == empty_dist(params)] = np.inf
    return out
