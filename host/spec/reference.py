"""Integer IVF-PQ reference model: the bit-exact definition of what every backend and kernel computes.

design.md section 2. For a query x and a probed list c the float table is

    T[m][k] = || (x - C[c])_m - P[m][k] ||^2
            = (A[c][m] + B[c][m][k]) + D[m][k]          (evaluated in exactly this order, float32)

    A[c][m]    = sum_j (x_mj - C[c]_mj)^2               residual norm of sub-vector m
    B[c][m][k] = sum_j P_mkj^2 + 2 * sum_j C[c]_mj P_mkj   per list, independent of the query
    D[m][k]    = -2 * sum_j x_mj P_mkj                  per query, independent of the list

Every sum runs sequentially over j in float32 (no FMA), so any implementation that keeps this order
reproduces T bit for bit.  Negative rounding residue is clipped to 0.

Inner product (metric "IP"; cosine = normalize, then IP) keeps the kernels: smaller is still better and
tables are still unsigned.  With the negated contributions a[c][m] = -sum_j x_mj C[c]_mj and
d[m][k] = -sum_j x_mj P_mkj (sequential float32 sums, then negated), the table is

    T[m][k] = (a[c][m] - min_c' a[c'][m]) + (d[m][k] - min_k' d[m][k'])     (min over the probed lists c')

Both brackets are >= 0 exactly, and sum_m T = -<x, C[c] + r> - O with the per-query offset
O = sum_m (min_c' a[c'][m] + min_k' d[m][k']) (``ip_offsets``), the same for every probed list and shard,
so ranking by sum_m Q is ranking by inner product; the coordinator reports -(dist / s + O).

For both metrics, per query, over all its probed lists, s = float32(2**b - 1) / max(T) (s = 1 when
max(T) == 0) and Q = rint(T * s) in float32 (round half to even), an unsigned b-bit integer.  The distance of a code is the sum of its m entries, and
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


METRICS = ("L2", "IP")


def check_metric(metric: str) -> str:
    """The kernel metric, "L2" or "IP" (cosine is IP on normalized vectors); raises ValueError otherwise."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    return metric


def query_terms(queries: np.ndarray, codebooks: np.ndarray, metric: str = "L2") -> np.ndarray:
    """D: float32[nq, m, 256] for queries float32[nq, d] (IP: d[m][k] - min_k d[m][k], see the module doc)."""
    m = codebooks.shape[0]
    x = split_sub(queries, m)[:, :, None, :]
    dot = _seq_dot(x, codebooks[None].astype(np.float32, copy=False))
    if check_metric(metric) == "IP":
        neg = -dot
        return neg - neg.min(axis=-1, keepdims=True)
    return np.float32(-2) * dot


def residual_norms(queries: np.ndarray, centroids: np.ndarray, list_ids: np.ndarray, m: int,
                   metric: str = "L2") -> np.ndarray:
    """A: float32[nq, nprobe, m] for list_ids int[nq, nprobe] (IP: a[c][m] - min over the probed lists)."""
    c = split_sub(centroids, m)[list_ids]                      # [nq, nprobe, m, dsub]
    if check_metric(metric) == "IP":
        a = -_seq_dot(split_sub(queries, m)[:, None], c)
        return a - a.min(axis=1, keepdims=True)
    return _seq_sqdist(split_sub(queries, m)[:, None], c)


def float_tables(queries, list_ids, centroids, codebooks, lterms=None, metric: str = "L2") -> np.ndarray:
    """T: float32[nq, nprobe, m, 256], clipped at 0 (L2: (A + B) + D; IP: A + D, no list terms)."""
    m = codebooks.shape[0]
    a = residual_norms(queries, centroids, list_ids, m, metric)[..., None]   # [nq, nprobe, m, 1]
    d = query_terms(queries, codebooks, metric)[:, None]
    if metric == "IP":
        return np.maximum(a + d, np.float32(0))
    if lterms is None:
        lterms = list_terms(centroids, codebooks)
    return np.maximum((a + lterms[list_ids]) + d, np.float32(0))


def ip_offsets(queries, list_ids, centroids, codebooks) -> np.ndarray:
    """O: float32[nq], the per-query offset of IP tables: -<x, y> ~= sum_m T + O (module doc)."""
    m = codebooks.shape[0]
    a = -_seq_dot(split_sub(queries, m)[:, None], split_sub(centroids, m)[list_ids])     # [nq, nprobe, m]
    d = -_seq_dot(split_sub(queries, m)[:, :, None, :], codebooks[None].astype(np.float32, copy=False))
    return (a.min(axis=1) + d.min(axis=-1)).sum(axis=1, dtype=np.float32)


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


def dequantize(dist: np.ndarray, scale: np.ndarray, params: ScanParams, offset: np.ndarray | None = None) -> np.ndarray:
    """Integer distances int64[nq, k] -> float32 approximations of squared L2 (inf for empty slots), or with
    the IP ``offset`` float32[nq] (``ip_offsets``) of inner products -(dist / s + O) (-inf for empty slots)."""
    out = dist.astype(np.float32) / scale[:, None]
    if offset is not None:
        out = -(out + offset[:, None])
    out[dist == empty_dist(params)] = np.inf if offset is None else -np.inf
    return out
