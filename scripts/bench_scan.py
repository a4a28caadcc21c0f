"""Benchmark the cpu scan backend against faiss-cpu IndexIVFPQ.search on the same index (design.md section 7).

End to end, coarse search included on both sides: faiss `index.search` does its coarse quantizer search, so the
anole side is timed as `IndexDir.coarse_search` + `CpuBackend.search` (table construction, scan and top-K), on
the same thread count, calls interleaved, best of --repeats.  Also prints the scan alone (the same coarse lists
given to faiss `search_preassigned` and to the backend), codes/s, recall@k of both vs exact search and their
overlap, and one summary line (end to end):

    bench_scan: anole-cpu 1.12x faiss (anole 190.3 M codes/s, faiss 170.1 M codes/s, threads=2, nq=1000, nprobe=16)
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.backends.cpu_backend import CpuBackend, resolve_threads
from host.index.builder import BuildConfig, build_ivfpq  # noqa: E402
from host.index.datasets import ground_truth, recall_at_k, synthetic_clustered  # noqa: E402
from host.index.index_dir import IndexDir, export_index, load_index  # noqa: E402
from host.spec.scan_params import ScanParams  # noqa: E402

log = logging.getLogger("bench_scan")
EXTRA = 10_000
"""Vectors generated after the base set; queries are taken from them (same distribution, not in the index)."""


def dataset(n: int, d: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(base float32[n, d], spare float32[EXTRA, d]) from one deterministic clustered draw.

    With as many mixture components as IVF lists the PQ codes spend their bits on the within-cluster spread;
    with many more (the synthetic default, 4096) the residuals are dominated by the centre offsets and
    recall@10 of PQ16 drops to ~0 for faiss and anole alike."""
    x = synthetic_clustered(n + EXTRA, d, seed=seed, clusters=clusters)
    return x[:n], x[n:]


def bench_index(cache: Path, base: np.ndarray, tag: str, nlist: int, m: int, seed: int, threads: int = 0) -> IndexDir:
    """Load the IVF-PQ index directory for this configuration from ``cache``, building it on first use."""
    n, d = base.shape
    path = cache / f"n{n}_d{d}_{tag}_nlist{nlist}_m{m}_s{seed}"
    if not (path / "manifest.json").is_file():
        log.info("building IVF%d,PQ%d over %d vectors into %s (cached for later runs)", nlist, m, n, path)
        t0 = time.perf_counter()
        export_index(build_ivfpq(base, BuildConfig(nlist=nlist, m=m, seed=seed, threads=threads)), path, nshards=1)
        log.info("built in %.1f s", time.perf_counter() - t0)
    return load_index(path, verify=False)


def best_of(fns: dict, repeats: int) -> dict[str, float]:
    """Smallest wall time of ``repeats`` calls of each function, after one warm-up call each.

    The calls are interleaved (a, b, c, a, b, c, ...) so that load from other processes hits all alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: min(t) for name, t in times.items()}


def run(args) -> str:
    import faiss

    threads = resolve_threads(args.threads)
    clusters = args.clusters or args.nlist
    base, spare = dataset(args.n, args.d, clusters, args.seed)
    queries = np.ascontiguousarray(spare[: args.nq])
    idx = bench_index(Path(args.cache), base, f"c{clusters}", args.nlist, args.m, args.seed, threads)
    params = ScanParams(m=idx.m, lut_bits=args.lut_bits, k=args.k)

    findex = idx.faiss_index()
    ivf = faiss.downcast_index(findex)
    ivf.nprobe = args.nprobe
    faiss.omp_set_num_threads(threads)
    backend = CpuBackend(idx, idx.shards[0], params, threads=threads)

    def anole_search():
        return backend.search(queries, idx.coarse_search(queries, args.nprobe))

    coarse_d, lists = ivf.quantizer.search(queries, args.nprobe)
    ncodes = int(idx.shards[0].list_sizes()[lists].sum())
    best = best_of({"faiss": lambda: findex.search(queries, args.k), "anole": anole_search,
                    "coarse": lambda: idx.coarse_search(queries, args.nprobe),
                    "faiss_pre": lambda: ivf.search_preassigned(queries, args.k, lists, coarse_d),
                    "anole_pre": lambda: backend.search(queries, lists)}, args.repeats)
    t_faiss, t_anole, t_coarse = best["faiss"], best["anole"], best["coarse"]

    nq_gt = min(args.nq, args.gt_queries)
    gt = ground_truth(base, queries[:nq_gt], args.k)
    _, fi = findex.search(queries[:nq_gt], args.k)
    ai = anole_search().ids[:nq_gt]
    r_faiss, r_anole = recall_at_k(fi, gt, args.k), recall_at_k(ai, gt, args.k)
    r_same = recall_at_k(ai, fi, args.k)

    faiss_rate, anole_rate = ncodes / t_faiss / 1e6, ncodes / t_anole / 1e6
    print(f"index: n={args.n} d={args.d} nlist={idx.nlist} m={idx.m}; {ncodes / args.nq:.0f} codes/query")
    print(f"faiss IndexIVFPQ.search   {t_faiss * 1e3:8.1f} ms  {faiss_rate:7.1f} M codes/s  recall@{args.k} {r_faiss:.4f}")
    print(f"anole cpu (coarse+scan)   {t_anole * 1e3:8.1f} ms  {anole_rate:7.1f} M codes/s  recall@{args.k} {r_anole:.4f}"
          f"  (coarse {t_coarse * 1e3:.1f} ms, lut_bits={args.lut_bits}, overlap with faiss ids {r_same:.4f})")
    print(f"scan only (coarse lists given to both): faiss search_preassigned {best['faiss_pre'] * 1e3:.1f} ms, "
          f"anole CpuBackend.search {best['anole_pre'] * 1e3:.1f} ms: {best['faiss_pre'] / best['anole_pre']:.2f}x")
    summary = (f"bench_scan: anole-cpu {t_faiss / t_anole:.2f}x faiss (anole {anole_rate:.1f} M codes/s, "
               f"faiss {faiss_rate:.1f} M codes/s, threads={threads}, nq={args.nq}, nprobe={args.nprobe})")
    print(summary)
    if args.plot:
        plot(args.plot, {"faiss IVFPQ": faiss_rate, f"anole cpu ({args.lut_bits}-bit)": anole_rate},
             f"{summary.split(' (')[0]}, threads={threads}, nq={args.nq}, nprobe={args.nprobe}")
    return summary


def plot(out: str, rates: dict[str, float], title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(rates), list(rates.values()), color=["#888888", "#2a7ab0"])
    ax.set_ylabel("M codes / s")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    log.info("wrote %s", out)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="indexed vectors")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--clusters", type=int, default=0, help="mixture components of the data (0: nlist)")
    p.add_argument("--nq", type=int, default=1000)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--lut-bits", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    p.add_argument("--gt-queries", type=int, default=200, help="queries used for recall vs exact search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="build/bench_index", help="where built indexes are kept")
    p.add_argument("--plot", metavar="OUT.png", help="write a bar chart")
    p.add_argument("--quick", action="store_true", help="small smoke-test configuration")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.nlist, args.nq, args.nprobe, args.repeats, args.gt_queries = 10_000, 32, 200, 8, 2, 100
    if args.nq > EXTRA:
        p.error(f"--nq must be <= {EXTRA}")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(parse_args())
