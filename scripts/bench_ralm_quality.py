"""Every RALM quality number of the README, regenerated from a fixed seed: the demo GPT-2 (reused, or trained
for a fixed number of steps), a kNN-LM datastore of its whole training split, the dev/test protocol (settings
chosen on the dev files, perplexity reported on the test files), the leakage split, the kNN-LM paper's
analyses on our data (perplexity vs datastore fraction, K, lambda, nprobe, lut_bits) and type-1 hit rates on
test questions beside exact search. Prints the README's tables (markdown, with the commit and date), writes
tuned.json beside both datastores and the plot build/ralm_quality/ralm_quality.png. Measured here (2 shared
cores, 2026-12-06; cold run 18 min, then 3.4 min with the keys, indexes and embeddings cached):

    bench_ralm_quality: kNN-LM test perplexity 168.05 vs base 229.77 = 0.73x (settings chosen on dev)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
for _var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):     # one thread each unless exported: on a shared machine
    os.environ.setdefault(_var, "1")                       # OpenMP spin-waits make more threads much slower

from host.index.builder import BuildConfig  # noqa: E402
from host.ralm.corpus import Embedder  # noqa: E402
from host.ralm.datastore import (DatastoreConfig, build_chunk_datastore, default_nlist, knn_keys,  # noqa: E402
                                 load_datastore, model_fingerprint, write_knn_datastore)
from host.ralm.splits import cached_embeddings, dev_test, embedded_chunks, lm_files  # noqa: E402
from host.ralm.tune_chunks import KINDS, tune_chunks  # noqa: E402
from host.ralm.tune_knn import retrieve_all, sweep_rows, tune_knn  # noqa: E402
from host.ralm.tuned import PerplexityConfig, save_tuned  # noqa: E402
from llm_node.config import EngineConfig  # noqa: E402
from llm_node.engine.llm_engine import LLMEngine  # noqa: E402
from llm_node.train import TrainConfig, train_demo_model  # noqa: E402

log = logging.getLogger("bench_ralm_quality")


def ensure_model(path: Path, steps: int, seed: int) -> dict:
    if not (path / "model.safetensors").is_file():
        log.info("training the demo GPT-2 for %d steps (seed %d, 1 thread) -> %s", steps, seed, path)
        train_demo_model(TrainConfig(out=path, minutes=0, steps=steps, threads=1, seed=seed))
    import json
    return json.loads((path / "train_log.json").read_text())


def cached_keys(engine, train: np.ndarray, work: Path) -> tuple[np.ndarray, np.ndarray]:
    fp = model_fingerprint(engine.config.model)["checkpoint_sha256"][:12]
    kf, vf = work / f"keys-{fp}-{len(train)}.npy", work / f"values-{fp}-{len(train)}.npy"
    if not kf.is_file():
        keys, values = knn_keys(engine, train.tolist(), engine.max_model_len)
        np.save(kf, keys)
        np.save(vf, values)
    return np.load(kf), np.load(vf)


def knn_store(keys, values, out: Path, engine, fraction: float, seed: int) -> Path:
    """The datastore of a seeded random ``fraction`` of the training keys (IVF ~4 sqrt(n), PQ32, 2 shards)."""
    if not (out / "datastore.json").is_file():
        keep = np.arange(len(keys)) if fraction >= 1 else np.sort(
            np.random.default_rng(seed).choice(len(keys), int(fraction * len(keys)), replace=False))
        cfg = DatastoreConfig(BuildConfig(nlist=default_nlist(len(keep)), m=32, seed=seed), shards=2)
        write_knn_datastore(keys[keep], values[keep], out, cfg, {"window": engine.max_model_len, "split": "train",
                            "fraction": fraction, "model_fingerprint": model_fingerprint(engine.config.model)})
    return out


def curve(rows: list[dict], by: str, **fixed) -> list[tuple]:
    """[(x, dev, test)]: for each value of ``by`` among the rows matching ``fixed``, the row best on dev."""
    best: dict = {}
    for r in rows:
        if all(r[k] == v for k, v in fixed.items()) and (r[by] not in best or r["dev"] < best[r[by]]["dev"]):
            best[r[by]] = r
    return [(x, best[x]["dev"], best[x]["test"]) for x in sorted(best)]


def run_knn(args, engine, model: Path, work: Path, timings: dict) -> dict:
    train, files = lm_files(model)
    train = train[: args.train_tokens] if args.train_tokens else train
    dev_ids, test_ids = dev_test(files, args.seed)
    t0 = time.perf_counter()
    keys, values = cached_keys(engine, train, work)
    timings["keys"] = time.perf_counter() - t0
    cfg = PerplexityConfig(window=engine.max_model_len, seed=args.seed)
    t0 = time.perf_counter()
    full = load_datastore(knn_store(keys, values, work / "knn-full", engine, 1.0, args.seed))
    timings["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = tune_knn(engine, full, model, dev_ids, test_ids, cfg, train_ids=train)
    save_tuned(full.path, res["tuned"])
    t = res["tuned"]
    parts = list(res["scores"])
    extra = {"nprobe": dataclasses.replace(cfg, nprobes=args.nprobes, lut_bits=(t.lut_bits,)),
             "lut_bits": dataclasses.replace(cfg, nprobes=(t.nprobe,), lut_bits=args.lut_bits)}
    out = {"res": res, "files": (len(files), dev_ids, test_ids), "n_keys": len(keys), "index": full.index}
    for name, c in extra.items():
        fixed = {"lam": t.lam, "k": t.k, "temperature": t.temperature}
        out[name] = curve(sweep_rows(*parts, retrieve_all(full, parts, c), c), name, **fixed)
    out["k"] = curve(res["rows"], "k", nprobe=t.nprobe, lut_bits=t.lut_bits)
    out["lam"] = curve(res["rows"], "lam", nprobe=t.nprobe, lut_bits=t.lut_bits)
    out["fraction"] = []
    for f in args.fractions:
        ds = full if f >= 1 else load_datastore(knn_store(keys, values, work / f"knn-{f:g}", engine, f, args.seed))
        c = dataclasses.replace(cfg, nprobes=(t.nprobe,), lut_bits=(t.lut_bits,))
        best = min(sweep_rows(*parts, retrieve_all(ds, parts, c), c), key=lambda r: r["dev"])
        out["fraction"].append((f, int(ds.index.ntotal), best["dev"], best["test"]))
    timings["protocol"] = time.perf_counter() - t0
    return out


class CachedEmbedder:
    """MiniLM with every embedding (chunks and questions) cached under the workdir."""

    def __init__(self, work: Path):
        self.work, self.inner = work, None

    def encode(self, texts, progress=False):
        self.inner = self.inner or Embedder()
        return cached_embeddings(list(texts), self.work / "embeddings", self.inner)


def run_chunks(args, work: Path, timings: dict) -> dict:
    t0 = time.perf_counter()
    chunks, x = embedded_chunks(work / "embeddings", max_chunks=args.max_chunks)
    out = work / f"chunks-{len(chunks)}"
    if not (out / "datastore.json").is_file():
        build_chunk_datastore(chunks, x, out, DatastoreConfig(BuildConfig(nlist=default_nlist(len(x)), m=48), shards=2))
    ds = load_datastore(out)
    res = tune_chunks(ds, CachedEmbedder(work), x, args.questions, args.chunk_nprobes, (16,), args.seed)
    save_tuned(out, res["tuned"])
    timings["type1"] = time.perf_counter() - t0
    return {"res": res, "index": ds.index}


def pct(new: float, old: float) -> str:
    return f"{new:.2f} ({100 * (new / old - 1):+.1f} %)"


def row(label: str, values) -> str:
    return "| " + " | ".join([label, *map(str, values)]) + " |"


def knn_tables(k: dict, train_log: dict) -> list[str]:
    t, res = k["res"]["tuned"], k["res"]
    f, lk = t.figures, t.figures["leakage"]
    n_files, dev_ids, test_ids = k["files"]
    best_test = min(res["rows"], key=lambda r: r["test"])
    out = [f"Model: the demo GPT-2, {train_log['params'] / 1e6:.2f} M parameters, {train_log['steps']:,} steps "
           f"(seed {train_log['config']['seed']}), context 128; datastore = hidden states of its whole training "
           f"split ({k['n_keys']:,} keys, IVF{k['index'].nlist},PQ{k['index'].m}, 2 shards); its {n_files} held-out "
           f"files split by file into dev ({f['dev_tokens']:,} tokens) and test ({f['test_tokens']:,} tokens), "
           f"seed {f['seed']}.", "",
           "| kNN-LM perplexity | dev | test |", "|---|---|---|",
           row("base LM", [f"{f['base_dev']:.2f}", f"{f['base_test']:.2f}"]),
           row(f"kNN-LM, chosen on dev: lambda {t.lam}, K {t.k}, T {t.temperature:g}, nprobe {t.nprobe}, "
               f"lut_bits {t.lut_bits}", [pct(f["knn_dev"], f["base_dev"]), f"**{pct(f['knn_test'], f['base_test'])}**"]),
           row(f"best on test (optimistic, tuned on the tokens it reports: lambda {best_test['lam']}, K "
               f"{best_test['k']}, T {best_test['temperature']:g})", ["", pct(f["test_oracle"], f["base_test"])]), "",
           f"| test targets (leakage, {lk['ngram']}-grams) | share | base LM | kNN-LM |", "|---|---|---|---|"]
    for label, part, share in (("preceded by a 16-gram that occurs verbatim in the training split", "leaked",
                                lk["fraction"]), ("all others", "clean", 1 - lk["fraction"])):
        out.append(row(label, [f"{100 * share:.1f} %", f"{lk['base_' + part]:.2f}",
                               pct(lk["knn_" + part], lk["base_" + part])] if lk["base_" + part] else
                       [f"{100 * share:.1f} %", "-", "-"]))
    out += ["", "Test perplexity as one setting varies, the others chosen on dev at each point "
            f"(base LM {f['base_test']:.2f}):", ""]
    for name, label, pts in (("fraction", "datastore fraction (keys)", [(f"{x:g} ({n:,})", d, te) for x, n, d, te
                                                                        in k["fraction"]]),
                             ("k", "K", k["k"]), ("lam", "lambda", k["lam"]),
                             ("nprobe", f"nprobe (lut_bits {t.lut_bits})", k["nprobe"]),
                             ("lut_bits", f"lut_bits (nprobe {t.nprobe})", k["lut_bits"])):
        out += [row(label, [x for x, _, _ in pts]), "|---" * (len(pts) + 1) + "|",
                row("test perplexity", [f"{te:.2f}" for _, _, te in pts]), ""]
    return out


def chunk_tables(c: dict) -> list[str]:
    t, rows, exact = c["res"]["tuned"], c["res"]["rows"], c["res"]["exact"]
    q = t.figures["questions"]
    out = [f"Type 1: {c['index'].ntotal:,} MiniLM-embedded stdlib docstring chunks (IVF{c['index'].nlist},"
           f"PQ{c['index'].m}, 2 shards); hit = a retrieved chunk contains the answer text; questions split "
           f"dev/test (seed {t.figures['seed']}); nprobe chosen by the dev top-10 rate: **{t.nprobe}**.", "",
           row("test questions", ["top-1", "top-10", "top-1, exact search", "top-10, exact search"]),
           "|---" * 5 + "|"]
    for kind in KINDS:
        out.append(row(f"{kind} ({q[kind]['test']})", [f"{t.figures['test'][f'{kind}@{n}']:.3f}" for n in (1, 10)]
                       + [f"{t.figures['exact_test'][f'{kind}@{n}']:.3f}" for n in (1, 10)]))
    out += ["", row("test top-10 by nprobe", [r["nprobe"] for r in rows] + ["exact"]), "|---" * (len(rows) + 2) + "|"]
    for kind in KINDS:
        out.append(row(kind, [f"{r['rates'][(kind, 'test', 10)]:.3f}" for r in rows]
                       + [f"{exact[(kind, 'test', 10)]:.3f}"]))
    return out


def plot(k: dict, c: dict | None, path: Path) -> Path:
    import matplotlib  # lazy: plotting only
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: plotting only

    f = k["res"]["tuned"].figures
    panels = [("datastore fraction", [(x, d, te) for x, _, d, te in k["fraction"]], True),
              ("K", k["k"], True), ("lambda", k["lam"], False), ("nprobe", k["nprobe"], True),
              ("lut_bits", k["lut_bits"], False)]
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5))
    for ax, (name, pts, logx) in zip(axes.flat, panels):
        xs = [p[0] for p in pts]
        ax.plot(xs, [p[2] for p in pts], "o-", label="kNN-LM, test")
        ax.plot(xs, [p[1] for p in pts], "s--", alpha=0.6, label="kNN-LM, dev")
        ax.axhline(f["base_test"], color="gray", ls=":", label="base LM, test")
        ax.axhline(f["base_dev"], color="gray", ls="-.", alpha=0.5, label="base LM, dev")
        if logx:
            ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.minorticks_off()
        ax.set_xlabel(name)
        ax.set_ylabel("perplexity")
    axes.flat[0].legend(fontsize=8)
    ax = axes.flat[5]
    if c is not None:
        rows = c["res"]["rows"]
        for kind in KINDS:
            ax.plot([r["nprobe"] for r in rows], [r["rates"][(kind, "test", 10)] for r in rows], "o-",
                    label=f"{kind}, IVF-PQ")
            ax.axhline(c["res"]["exact"][(kind, "test", 10)], ls=":", color=ax.lines[-1].get_color(),
                       label=f"{kind}, exact")
        ax.set_xscale("log")
        ax.set_xticks([r["nprobe"] for r in rows], [str(r["nprobe"]) for r in rows])
        ax.minorticks_off()
        ax.set_xlabel("nprobe")
        ax.set_ylabel("type-1 top-10 hit rate, test")
        ax.legend(fontsize=8)
    else:
        ax.axis("off")
    fig.suptitle("RALM quality on the demo GPT-2 (settings chosen on dev, reported on test)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def csv(kind):
    return lambda s: tuple(kind(x) for x in s.split(","))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="build/ralm_quality/model", help="reused if present, else trained")
    p.add_argument("--train-steps", type=int, default=1500, help="training steps when the model is missing")
    p.add_argument("--workdir", default="build/ralm_quality")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-tokens", type=int, default=0, help="datastore: the first N training tokens (default all)")
    p.add_argument("--fractions", type=csv(float), default=(0.03, 0.1, 0.3, 1.0))
    p.add_argument("--nprobes", type=csv(int), default=(1, 2, 4, 8, 16, 32, 64))
    p.add_argument("--lut-bits", type=csv(int), default=(8, 10, 12, 14, 16))
    p.add_argument("--max-chunks", type=int, default=2000,
                   help="type-1 corpus: an even sample of the 6,640 chunks, as the demo (default 2000; 0 = all)")
    p.add_argument("--questions", type=int, default=200, help="type-1 questions of each kind, half dev, half test")
    p.add_argument("--chunk-nprobes", type=csv(int), default=(1, 2, 4, 8, 16, 32))
    p.add_argument("--no-type1", action="store_true")
    p.add_argument("--plot", default="build/ralm_quality/ralm_quality.png")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    work, model, timings = Path(args.workdir), Path(args.model), {}
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_log = ensure_model(model, args.train_steps, args.seed)
    engine = LLMEngine(EngineConfig(model, num_kv_blocks=64))
    k = run_knn(args, engine, model, work, timings)
    c = None if args.no_type1 else run_chunks(args, work, timings)
    timings["total"] = time.perf_counter() - t0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"Regenerated by `scripts/bench_ralm_quality.py` at commit {commit or '?'} on {date} ("
          + ", ".join(f"{n} {s:.0f} s" for n, s in timings.items()) + "):\n")
    print("\n".join(knn_tables(k, train_log) + ([""] + chunk_tables(c) if c else [])))
    print(f"\nplot: {plot(k, c, Path(args.plot))}")
    f = k["res"]["tuned"].figures
    print(f"bench_ralm_quality: kNN-LM test perplexity {f['knn_test']:.2f} vs base {f['base_test']:.2f} = "
          f"{f['knn_test'] / f['base_test']:.2f}x (settings chosen on dev)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
