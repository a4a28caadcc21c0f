"""Chameleon-style RALM study over real local processes: kNN-LM (type 2) throughput and per-step latency vs
batch size and number of memory nodes, type-1 throughput vs retrieval interval; the baseline is the same
LLM node generating the same number of tokens without retrieval, in the same run.

Needs the demo's model and datastores (run `anole demo` once). Prints one line per setting and a summary:

    bench_ralm: kNN-LM at batch 16 over 2 memory nodes = 0.41x plain LM tokens/s (...)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from host.index.index_dir import export_index
from host.net.frames import parse_address  # noqa: E402
from host.ralm.cluster import LocalCluster  # noqa: E402
from host.ralm.datastore import load_datastore  # noqa: E402
from host.ralm.flows import RalmConfig, RalmCoordinator  # noqa: E402
from host.serve.coordinator import Coordinator, CoordinatorConfig  # noqa: E402
from host.spec.scan_params import ScanParams  # noqa: E402
from llm_node.client import LLMClient  # noqa: E402
from llm_node.defaults import DEMO_MODEL  # noqa: E402


def resharded(store: Path, shards: int, cache: Path) -> Path:
    """The datastore ``store`` with its index re-exported over ``shards`` shards (same faiss index)."""
    import faiss

    meta = json.loads((store / "datastore.json").read_text())
    if int(json.loads((store / "index" / "manifest.json").read_text())["nshards"]) == shards:
        return store
    out = cache / f"{store.name}-reshard{shards}"
    if not (out / "datastore.json").is_file():
        export_index(faiss.read_index(str(store / "index" / "index.faiss")), out / "index", shards,
                     source={"datastore": meta["kind"], "resharded_from": str(store)})
        for f in ("values.i64", "chunks.jsonl"):
            if (store / f).is_file():
                shutil.copy(store / f, out / f)
        (out / "datastore.json").write_text(json.dumps(meta))
    return out


async def one_setting(store: Path, addrs: list[str], llm_addr: str, batch: int, tokens: int, cfg: RalmConfig):
    ds = load_datastore(store, shards=[])
    coord = Coordinator(ds.index, addrs, ScanParams(m=ds.index.m, k=cfg.k),
                        CoordinatorConfig())
    llm = await LLMClient.connect(*parse_address(llm_addr))
    try:
        await coord.connect()
        ralm = RalmCoordinator(llm, cfg, knn=coord, knn_values=ds.values)
        await ralm.check()
        rng = np.random.default_rng(batch)
        prompts = [rng.integers(1, 4000, 8).tolist() for _ in range(batch)]
        await ralm.generate_knn(prompts[0], 2, ignore_eos=True)           # warm-up
        t0 = time.perf_counter()
        async def plain_one(p):
            return [i async for i in llm.generate(p, max_tokens=tokens, temperature=0.0, ignore_eos=True)]
        await asyncio.gather(*(plain_one(p) for p in prompts))
        plain = batch * tokens / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = await asyncio.gather(*(ralm.generate_knn(p, tokens, ignore_eos=True) for p in prompts))
        knn = batch * tokens / (time.perf_counter() - t0)
        steps = [s for r in res for s in r.steps]
        stages = ("retrieval", "queue", "coarse", "scan", "network", "decode")
        mean = {k: float(np.mean([s[k] for s in steps if k in s])) for k in stages}
        return {"plain_tok_s": plain, "knn_tok_s": knn, **{f"{k}_ms": v * 1e3 for k, v in mean.items()},
                "fanout": float(np.mean([s["batch"] for s in steps]))}
    finally:
        await llm.close()
        await coord.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datastore", default=None, help="kNN datastore (default: the demo's)")
    ap.add_argument("--model", default=str(DEMO_MODEL))
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--nodes", default="1,2")
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--plot", default="build/bench_ralm.png")
    args = ap.parse_args(argv)
    store = Path(args.datastore) if args.datastore else max(Path("build/demo").glob("knn-*/datastore.json"),
                                                            key=lambda p: p.stat().st_mtime).parent
    cfg = RalmConfig(k=args.k, lam=0.15, knn_temperature=1.5)
    rows = []
    for n in (int(x) for x in args.nodes.split(",")):
        s = resharded(store, n, Path("build/bench_ralm"))
        with LocalCluster(Path("build/bench_ralm/logs")) as cluster:
            procs = [cluster.spawn(f"memory node {i}", ["serve", "memory-node", "--index", str(s / "index"), "--shard",
                                                        str(i), "--port", "0", "--k", str(args.k), "--threads", "1"])
                     for i in range(n)]
            llm = cluster.spawn("llm node", ["serve", "llm-node", "--model", args.model, "--port", "0",
                                             "--threads", "1"])
            addrs = [cluster.wait_ready(p) for p in procs]
            llm_addr = cluster.wait_ready(llm)
            for b in (int(x) for x in args.batches.split(",")):
                r = asyncio.run(one_setting(s, addrs, llm_addr, b, args.tokens, cfg))
                rows.append({"nodes": n, "batch": b, **r})
                print(f"nodes {n} batch {b:3d}: kNN-LM {r['knn_tok_s']:6.1f} tok/s vs plain {r['plain_tok_s']:6.1f} "
                      f"({r['knn_tok_s'] / r['plain_tok_s']:.2f}x); per step retrieval {r['retrieval_ms']:.1f} ms "
                      f"(queue {r['queue_ms']:.1f}, coarse {r['coarse_ms']:.2f}, scan {r['scan_ms']:.1f}, network "
                      f"{r['network_ms']:.1f}), decode {r['decode_ms']:.1f} ms, "
                      f"fan-out {r['fanout']:.1f} queries", flush=True)
    best = max(rows, key=lambda r: (r["batch"], r["nodes"]))
    print(f"bench_ralm: kNN-LM at batch {best['batch']} over {best['nodes']} memory nodes = "
          f"{best['knn_tok_s'] / best['plain_tok_s']:.2f}x plain LM tokens/s ({best['knn_tok_s']:.1f} vs "
          f"{best['plain_tok_s']:.1f} tok/s, same LLM node, same run)")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        for n in sorted({r["nodes"] for r in rows}):
            rs = [r for r in rows if r["nodes"] == n]
            ax[0].plot([r["batch"] for r in rs], [r["knn_tok_s"] for r in rs], "o-", label=f"kNN-LM, {n} nodes")
            ax[1].plot([r["batch"] for r in rs], [r["retrieval_ms"] for r in rs], "o-", label=f"retrieval, {n} nodes")
            ax[1].plot([r["batch"] for r in rs], [r["decode_ms"] for r in rs], "s--", label=f"generation, {n} nodes")
        rs = [r for r in rows if r["nodes"] == rows[0]["nodes"]]
        ax[0].plot([r["batch"] for r in rs], [r["plain_tok_s"] for r in rs], "k:", label="plain LM")
        ax[0].set(xlabel="concurrent requests", ylabel="tokens/s", xscale="log")
        ax[1].set(xlabel="concurrent requests", ylabel="ms per step", xscale="log")
        ax[0].legend()
        ax[1].legend()
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=100)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
