"""Numba kernels of the cpu backend: table construction, quantization, ADC scan and top-K.

Bit-exact with host/spec/reference.py: every float32 sum keeps the reference's order (sequential over j,
vectorized across the 256 table entries only), nothing is compiled with fastmath (no FMA contraction),
quantization is rint (half to even) then min with 2**b - 1, and top-K keeps the k smallest (dist, id).
All functions are compiled once and cached on disk (cache=True).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

_KSUB = 256


@njit(cache=True, nogil=True)
def query_terms(x, cbt, dterm, ip=False):
    """D: x float32[d], codebooks transposed float32[m, dsub, 256] -> dterm float32[m, 256] (written).

    ip: the inner-product terms d[m][k] - min_k d[m][k] with d = -<x_m, P[m][k]> (reference module doc)."""
    m, dsub, ksub = cbt.shape
    for s in range(m):
        acc = dterm[s]
        acc[:] = np.float32(0)
        for j in range(dsub):
            xv = x[s * dsub + j]
            row = cbt[s, j]
            for c in range(ksub):
                acc[c] += xv * row[c]
        if ip:
            low = -acc[0]
            for c in range(ksub):
                acc[c] = -acc[c]
                low = acc[c] if acc[c] < low else low
            for c in range(ksub):
                acc[c] = acc[c] - low
        else:
            for c in range(ksub):
                acc[c] = np.float32(-2) * acc[c]


@njit(cache=True, nogil=True)
def ip_list_terms(x, lids, centroids, m):
    """a[p][m] - min_p a[p][m] with a = -<x_m, C[lids[p]]_m>: float32[nprobe, m] (reference module doc)."""
    dsub = x.shape[0] // m
    aa = np.empty((lids.shape[0], m), np.float32)
    for p in range(lids.shape[0]):
        for s in range(m):
            a = np.float32(0)
            for j in range(dsub):
                a += x[s * dsub + j] * centroids[lids[p], s * dsub + j]
            aa[p, s] = -a
    for s in range(m):
        low = aa[0, s]
        for p in range(lids.shape[0]):
            low = aa[p, s] if aa[p, s] < low else low
        for p in range(lids.shape[0]):
            aa[p, s] = aa[p, s] - low
    return aa


@njit(cache=True, nogil=True)
def float_tables_one(x, lids, centroids, lterms, dterm, ft, ip=False):
    """T of one query: lids int64[nprobe] -> ft float32[nprobe, m, 256] (written); returns max(T) (float32).

    dterm float32[m, 256] must hold query_terms(x, ip); lterms float32[nlist, m, 256] is B (unused for ip:
    T = A + D, the A of ip_list_terms)."""
    m = dterm.shape[0]
    dsub = x.shape[0] // m
    vmax = np.zeros(_KSUB, np.float32)          # running max per entry: vectorizes, unlike a scalar max
    if ip:
        aa = ip_list_terms(x, lids, centroids, m)
        for p in range(lids.shape[0]):
            for s in range(m):
                a = aa[p, s]
                dt = dterm[s]
                out = ft[p, s]
                for k in range(_KSUB):
                    t = a + dt[k]
                    t = t if t > np.float32(0) else np.float32(0)
                    out[k] = t
                    vmax[k] = t if t > vmax[k] else vmax[k]
    for p in range(0 if ip else lids.shape[0]):
        c = lids[p]
        for s in range(m):
            a = np.float32(0)
            for j in range(dsub):
                diff = x[s * dsub + j] - centroids[c, s * dsub + j]
                a += diff * diff
            b = lterms[c, s]
            dt = dterm[s]
            out = ft[p, s]
            for k in range(_KSUB):
                t = (a + b[k]) + dt[k]
                t = t if t > np.float32(0) else np.float32(0)
                out[k] = t
                vmax[k] = t if t > vmax[k] else vmax[k]
    tmax = np.float32(0)
    for k in range(_KSUB):
        tmax = vmax[k] if vmax[k] > tmax else tmax
    return tmax


@njit(cache=True, nogil=True)
def quantize_one(ft, tmax, lut_max, qt):
    """Q = min(rint(T * s), lut_max) for one query: ft float32[nprobe, m, 256] -> qt uint16[...]; returns s."""
    scale = np.float32(lut_max) / tmax if tmax > np.float32(0) else np.float32(1)
    top = np.float32(lut_max)
    f = ft.reshape(-1)
    q = qt.reshape(-1)
    for i in range(f.shape[0]):
        v = np.rint(f[i] * scale)
        q[i] = np.uint16(v if v < top else top)
    return scale


@njit(cache=True, parallel=True)
def build_tables(queries, list_ids, centroids, lterms, cbt, lut_bits, qt, scale, ip=False):
    """Quantized tables of all queries: writes qt uint16[nq, nprobe, m, 256] and scale float32[nq]."""
    nq, nprobe = list_ids.shape
    m = cbt.shape[0]
    lut_max = (1 << lut_bits) - 1
    for q in prange(nq):
        dterm = np.empty((m, _KSUB), np.float32)
        ft = np.empty((nprobe, m, _KSUB), np.float32)
        query_terms(queries[q], cbt, dterm, ip)
        tmax = float_tables_one(queries[q], list_ids[q], centroids, lterms, dterm, ft, ip)
        scale[q] = quantize_one(ft, tmax, lut_max, qt[q])


@njit(cache=True, parallel=True)
def build_float_tables(queries, list_ids, centroids, lterms, cbt, ft, ip=False):
    """Float tables T of all queries: writes ft float32[nq, nprobe, m, 256]."""
    nq = queries.shape[0]
    m = cbt.shape[0]
    for q in prange(nq):
        dterm = np.empty((m, _KSUB), np.float32)
        query_terms(queries[q], cbt, dterm, ip)
        float_tables_one(queries[q], list_ids[q], centroids, lterms, dterm, ft[q], ip)


@njit(cache=True, nogil=True)
def _heap_replace(hd, hi, d, i):
    """Replace the root (worst key) of the max-heap hd/hi on (dist, id) by (d, i) and sift it down."""
    k = hd.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and (hd[child + 1] > hd[child] or (hd[child + 1] == hd[child] and hi[child + 1] > hi[child])):
            child += 1
        if hd[child] < d or (hd[child] == d and hi[child] <= i):
            break
        hd[pos] = hd[child]
        hi[pos] = hi[child]
        pos = child
    hd[pos] = d
    hi[pos] = i


@njit(cache=True, nogil=True)
def _scan_list(tab, codes, codes64, ids, lo, hi, hd, hid, words):
    """Push codes[lo:hi] into the heap hd/hid; tab uint16[m * 256] is the probe's flat table.

    words = tuple(range(nw)) carries nw = m / 8 in its type, so the loop over words has a compile-time trip
    count and unrolls into straight-line code over codes64 uint64[n, nw]; words == (): a plain loop over the
    bytes of codes uint8[n, m] (m % 8 != 0)."""
    m = codes.shape[1]
    nw = len(words)
    for i in range(lo, hi):
        d = 0
        if nw > 0:
            for w in range(nw):
                x = codes64[i, w]
                b = w * 2048
                d += (tab[b + (x & 0xff)] + tab[b + 256 + ((x >> 8) & 0xff)] + tab[b + 512 + ((x >> 16) & 0xff)]
                      + tab[b + 768 + ((x >> 24) & 0xff)] + tab[b + 1024 + ((x >> 32) & 0xff)]
                      + tab[b + 1280 + ((x >> 40) & 0xff)] + tab[b + 1536 + ((x >> 48) & 0xff)]
                      + tab[b + 1792 + (x >> 56)])
        else:
            for j in range(m):
                d += tab[j * 256 + codes[i, j]]
        if d <= hd[0]:
            v = ids[i]
            if d < hd[0] or v < hid[0]:
                _heap_replace(hd, hid, d, v)


@njit(cache=True, nogil=True)
def _sorted_out(hd, hid, empty_dist, out_d, out_i):
    """Sort the heap by (dist, id) into out_d/out_i; sentinel slots (never a real distance) get id -1."""
    k = hd.shape[0]
    for a in range(k):
        out_d[a] = hd[a]
        out_i[a] = hid[a]
    for a in range(1, k):
        d, v = out_d[a], out_i[a]
        b = a - 1
        while b >= 0 and (out_d[b] > d or (out_d[b] == d and out_i[b] > v)):
            out_d[b + 1] = out_d[b]
            out_i[b + 1] = out_i[b]
            b -= 1
        out_d[b + 1] = d
        out_i[b + 1] = v
    for a in range(k):
        if out_d[a] == empty_dist:
            out_i[a] = -1


@njit(cache=True, parallel=True)
def search(queries, list_ids, centroids, lterms, cbt, offsets, codes, codes64, words, ids, lut_bits, empty_dist,
           block, out_d, out_i, scale, ip=False):
    """Tables, scan and top-K of every query, queries split in blocks over threads.

    queries float32[nq, d], list_ids int64[nq, nprobe]; offsets int64[nlist + 1], codes uint8[n, m],
    codes64 uint64[n, m / 8] and words = tuple(range(m / 8)) (uint64[0, 0] and () when m % 8), ids int64[n].
    Writes out_d, out_i int64[nq, k] and scale float32[nq]; ip: inner-product tables. Compiled once per m / 8
    (the type of words)."""
    nq, nprobe = list_ids.shape
    m = cbt.shape[0]
    k = out_d.shape[1]
    lut_max = (1 << lut_bits) - 1
    big = np.iinfo(np.int64).max
    for bi in prange((nq + block - 1) // block):
        dterm = np.empty((m, _KSUB), np.float32)
        ft = np.empty((nprobe, m, _KSUB), np.float32)
        qt = np.empty((nprobe, m, _KSUB), np.uint16)
        hd = np.empty(k, np.int64)
        hid = np.empty(k, np.int64)
        for q in range(bi * block, min(nq, (bi + 1) * block)):
            query_terms(queries[q], cbt, dterm, ip)
            tmax = float_tables_one(queries[q], list_ids[q], centroids, lterms, dterm, ft, ip)
            scale[q] = quantize_one(ft, tmax, lut_max, qt)
            hd[:] = empty_dist
            hid[:] = big
            for p in range(nprobe):
                c = list_ids[q, p]
                _scan_list(qt[p].reshape(-1), codes, codes64, ids, offsets[c], offsets[c + 1], hd, hid, words)
            _sorted_out(hd, hid, empty_dist, out_d[q], out_i[q])
