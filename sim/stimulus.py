"""Randomized scan workloads and their beat sequences, shared by the cocotb bench and amaranth tests."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from host.spec.reference import scan_query
from host.spec.scan_params import KSUB, ScanParams
from hw.interface import BeatCodec, Op


@dataclass(slots=True)
class Query:
    """One query: tables uint16[nprobe, m, 256], list ids int[nprobe], lists [(codes uint8[n, m], ids int64[n])]."""
    tables: np.ndarray
    list_ids: list[int]
    lists: list[tuple[np.ndarray, np.ndarray]]
    expect: tuple[np.ndarray, np.ndarray] = field(default=None)

    @property
    def scans(self) -> int:
        return len(self.lists)

    @property
    def codes(self) -> int:
        return sum(c.shape[0] for c, _ in self.lists)


def _list_length(rng: np.random.Generator, lanes: int, long_len: int) -> int:
    kind = rng.integers(6)
    if kind == 0:
        return 0
    if kind == 1:
        return 1
    if kind == 2:
        return int(rng.integers(1, lanes + 1))
    if kind == 3:
        return int(rng.integers(1, long_len + 1))
    return int(rng.integers(1, 4 * lanes + 8))


def random_query(params: ScanParams, rng: np.random.Generator, *, max_probes: int = 4,
                 long_len: int = 64, nprobe: int | None = None, lengths=None) -> Query:
    """A query over random lists: random tables, or all-equal / maximum-value tables (ties by id)."""
    p = params
    if nprobe is None:
        nprobe = int(rng.integers(0, max_probes + 1))
    mode = rng.integers(8)
    if mode == 0:
        tables = np.full((nprobe, p.m, KSUB), rng.integers(0, p.lut_max + 1), np.uint16)
    elif mode == 1:
        tables = np.full((nprobe, p.m, KSUB), p.lut_max, np.uint16)
    elif mode == 2:   # few distinct values: many equal distances
        tables = rng.integers(0, 3, (nprobe, p.m, KSUB)).astype(np.uint16) * np.uint16(p.lut_max // 2)
    else:
        tables = rng.integers(0, p.lut_max + 1, (nprobe, p.m, KSUB), dtype=np.int64).astype(np.uint16)
    lists = []
    if lengths is None:
        lengths = [_list_length(rng, p.lanes, long_len) for _ in range(nprobe)]
    total = sum(lengths)
    id_space = min(p.max_id, max(4 * total, 16))
    ids_all = rng.choice(id_space, size=total, replace=False) if total else np.zeros(0, np.int64)
    if total and rng.integers(4) == 0:
        ids_all = ids_all[::-1].copy()
    if total and rng.integers(4) == 0:           # ids at the top of the id range
        ids_all = min(p.max_id, (1 << 62) - 1) - ids_all
    at = 0
    for n in lengths:
        codes = rng.integers(0, KSUB, (n, p.m), dtype=np.int64).astype(np.uint8)
        lists.append((codes, ids_all[at:at + n].astype(np.int64)))
        at += n
    list_ids = [int(x) for x in rng.integers(0, p.max_lists, nprobe)]
    q = Query(tables, list_ids, lists)
    q.expect = scan_query(p, tables, lists)
    return q


def query_beats(codec: BeatCodec, q: Query, rng: np.random.Generator | None = None,
                sparse: float = 0.0) -> tuple[list[int], list[int]]:
    """(table-stream beats, i-stream beats) of one query; with `rng`, each list is sent with probability
    `sparse` in beats of random nonzero lane masks (holes between valid lanes), junk in the invalid lanes."""
    tb, ib = [], []
    for t, lid, (codes, ids) in zip(q.tables, q.list_ids, q.lists):
        tb += codec.table_beats(t, lid)
        ib.append(codec.op_beat(Op.LIST, lid))
        if rng is not None and codes.shape[0] and rng.random() < sparse:
            ib += sparse_code_beats(codec, codes, ids, rng)
        else:
            ib += codec.code_beats(codes, ids)
        ib.append(codec.op_beat(Op.END_LIST))
    ib.append(codec.op_beat(Op.END_QUERY))
    return tb, ib


def sparse_code_beats(codec: BeatCodec, codes: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> list[int]:
    """CODES beats carrying codes uint8[n, m] (ids int[n]) in order, in the lanes of random nonzero masks."""
    lanes, n = codec.params.lanes, codes.shape[0]
    masks, placed = [], 0
    while placed < n:
        mask = int(rng.integers(1, 1 << lanes))
        masks.append(mask)
        placed += bin(mask).count("1")
    slots = np.array([b * lanes + l for b, mask in enumerate(masks) for l in range(lanes) if mask >> l & 1])[:n]
    masks[-1] &= (1 << (int(slots[-1]) % lanes + 1)) - 1       # no valid lane past the last code
    all_codes = rng.integers(0, KSUB, (len(masks) * lanes, codes.shape[1]), dtype=np.int64).astype(np.uint8)
    all_ids = rng.integers(0, min(codec.params.max_id, (1 << 62) - 1), len(masks) * lanes, dtype=np.int64)
    all_codes[slots], all_ids[slots] = codes, ids
    beats = codec.code_beats(all_codes, all_ids)
    ov = codec.code["valid"][0]
    full = (1 << lanes) - 1
    return [(b & ~(full << ov)) | (mask << ov) for b, mask in zip(beats, masks)]


def lane_counts(codec: BeatCodec, ibeats: list[int]) -> list[int]:
    """Valid codes per lane in CODES beats of `ibeats`."""
    lanes, (ov, _), (oo, wo) = codec.params.lanes, codec.code["valid"], codec.code["op"]
    counts = [0] * lanes
    for b in ibeats:
        if (b >> oo) & ((1 << wo) - 1) == Op.CODES.value:
            for l in range(lanes):
                counts[l] += (b >> (ov + l)) & 1
    return counts


def expected_results(params: ScanParams, q: Query) -> list[tuple[int, int]]:
    """The K (dist, id) pairs the kernel must emit, ids as unsigned id_bits integers."""
    d, i = q.expect
    return [(int(a), int(b) & params.max_id) for a, b in zip(d, i)]
