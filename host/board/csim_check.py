"""Randomized C simulation of the HLS kernel against the reference model (what `make -C hls csim` runs).

    python -m host.board.csim_check m=16 lanes=4 k=10 --queries 50 --seed 0
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from host.board.hls_build import run_testbench
from host.board.hls_config import parse_params
from host.index.index_dir import Shard
from host.spec import reference
from host.spec.errors import AnoleError
from host.spec.layout import KernelLayout
from host.spec.scan_params import KSUB, ScanParams


def random_case(params: ScanParams, nq: int, nprobe: int, rng: np.random.Generator):
    """A shard with lists of 0 .. 4*lanes+40 codes (distinct random ids), quantized tables
    uint16[nq, nprobe, m, 256] (some at the maximum value, some constant) and probes int64[nq, nprobe]."""
    p = params
    sizes = rng.integers(0, 4 * p.lanes + 40, 16)
    sizes[:3] = [0, 1, max(p.lanes - 1, 1)]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    ids = rng.choice(min(p.max_id, 1 << 40) + 1, n, replace=False).astype(np.int64)
    shard = Shard(offsets=offsets, codes=rng.integers(0, KSUB, (n, p.m), dtype=np.uint8), ids=ids)
    tables = rng.integers(0, p.lut_max, (nq, nprobe, p.m, KSUB), dtype=np.uint16, endpoint=True)
    tables[::7] = p.lut_max
    tables[3::7] = 1
    return shard, tables, rng.integers(0, len(sizes), (nq, nprobe))


def check(params: ScanParams, nq: int = 50, nprobe: int = 4, seed: int = 0, workdir: Path | None = None) -> int:
    """Run one batch through tb_scan; returns the number of mismatching queries (0 = bit-exact)."""
    lay = KernelLayout(params)
    shard, tables, probes = random_case(params, nq, nprobe, np.random.default_rng(seed))
    codes, ids, first = lay.shard_image(shard)
    bufs = {"codes": codes, "ids": ids, "tables": lay.tables(tables),
            "lists": lay.descriptors(first, shard.list_sizes(), probes)}
    with tempfile.TemporaryDirectory() as tmp:
        raw, config = run_testbench(params, bufs, nq, nprobe, Path(workdir or tmp))
    if config != lay.config_word:
        raise AnoleError(f"tb_scan reports config {config:#x}, expected {lay.config_word:#x}")
    dist, got = lay.unpack_results(raw, nq)
    bad = 0
    for q in range(nq):
        want_d, want_i = reference.scan_query(params, tables[q], [shard.list(int(c)) for c in probes[q]])
        bad += not (np.array_equal(dist[q], want_d) and np.array_equal(got[q], want_i))
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="*", help="NAME=INT ScanParams fields")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--nprobe", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        params = parse_params(args.params)
        t0 = time.perf_counter()
        bad = check(params, args.queries, args.nprobe, args.seed)
    except AnoleError as e:
        print(f"csim: error: {e}", file=sys.stderr)
        return 2
    print(f"csim {params}: {args.queries} queries x {args.nprobe} probes, {bad} mismatches "
          f"({time.perf_counter() - t0:.1f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
