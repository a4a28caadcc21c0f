"""`anole ralm build chunks|knn`, `anole ralm eval knn|chunks`: RALM datastores and their quality."""
from __future__ import annotations

import json
from pathlib import Path

from host.index.builder import BuildConfig
from host.cli.common import group
from host.ralm.corpus import Embedder
from host.ralm.datastore import (DatastoreConfig, build_chunk_datastore, build_knn_datastore, default_nlist,
                                 load_datastore)
from host.ralm.splits import cached_embeddings, embedded_chunks, lm_splits
from host.spec.errors import InputError
from llm_node.defaults import DEMO_MODEL


def register(sub, groups):
    ralm = group(sub, groups, "ralm", "retrieval-augmented LMs: build datastores, evaluate them")

    p = ralm.add_parser("build", help="build a type-1 (chunks) or type-2 (knn) datastore",
                        description="chunks: MiniLM embeddings of the standard library's docstring chunks; "
                                    "knn: (last-layer hidden state, next token) of a LM over its training split. "
                                    "Both are IVF-PQ index directories sharded over --shards memory nodes.")
    p.add_argument("kind", choices=["chunks", "knn"])
    p.add_argument("--out", required=True, help="datastore folder")
    p.add_argument("--model", help=f"knn: checkpoint folder of the LM (default {DEMO_MODEL})",
                   default=str(DEMO_MODEL))
    p.add_argument("--split", choices=["train", "val"], default="train",
                   help="knn: which part of the LM's own corpus split to store (default train)")
    p.add_argument("--max-tokens", type=int, default=0, help="knn: store at most this many tokens (default all)")
    p.add_argument("--window", type=int, default=0, help="knn: scoring window (default: the model's context)")
    p.add_argument("--max-chunks", type=int, default=0, help="chunks: limit the corpus (default all)")
    p.add_argument("--nlist", type=int, default=0, help="IVF lists (default ~4 sqrt(n), a power of two)")
    p.add_argument("--m", type=int, default=0, help="PQ sub-quantizers (default 32 for knn, 48 for chunks)")
    p.add_argument("--shards", type=int, default=2, help="memory-node shards (default 2)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.set_defaults(func=build)

    p = ralm.add_parser("eval", help="kNN-LM perplexity vs the base LM, or type-1 retrieval hit rate",
                        description="knn: perplexity of the LM's held-out split under the base LM and under kNN-LM "
                                    "for every lambda x K x temperature, per nprobe x lut_bits. chunks: hit rate of "
                                    "questions built from the corpus (the retrieved chunks contain the answer).")
    p.add_argument("kind", choices=["knn", "chunks"])
    p.add_argument("--datastore", required=True, help="datastore folder (anole ralm build)")
    p.add_argument("--model", default=str(DEMO_MODEL), help="knn: checkpoint folder")
    p.add_argument("--memory-nodes", default="", help="H:P,...: retrieve through memory nodes (default in-process)")
    p.add_argument("--backend", default="cpu", help="in-process scan backend (default cpu)")
    p.add_argument("--max-tokens", type=int, default=0, help="knn: held-out tokens scored (default all)")
    p.add_argument("--lambdas", default="0,0.05,0.1,0.2,0.3,0.5")
    p.add_argument("--ks", default="8,32,100")
    p.add_argument("--temperatures", default="0.1,0.3,1,3")
    p.add_argument("--nprobes", default="8", help="comma list (default 8)")
    p.add_argument("--lut-bits", default="16", help="comma list (default 16)")
    p.add_argument("--questions", type=int, default=200, help="chunks: questions (default 200)")
    p.add_argument("--cache", default=None, help="chunks: where MiniLM embeddings of the chunks are cached, for "
                                                 "the exact-search reference (default: DATASTORE/../embeddings)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=evaluate)


def _floats(s: str) -> tuple[float, ...]:
    return tuple(float(x) for x in s.split(",") if x.strip())


def _engine(model: str, threads: int):
    import torch

    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch

    if threads:
        torch.set_num_threads(threads)
    return LLMEngine(EngineConfig(model, num_kv_blocks=64))


def build(args) -> int:
    if args.kind == "knn":

        engine = _engine(args.model, args.threads)
        train, val = lm_splits(args.model)
        ids = (train if args.split == "train" else val)
        ids = ids[: args.max_tokens] if args.max_tokens else ids
        cfg = DatastoreConfig(BuildConfig(nlist=args.nlist or default_nlist(len(ids)), m=args.m or 32), shards=args.shards)
        out = build_knn_datastore(engine, ids.tolist(), args.out, cfg, window=args.window or None,
                                  meta={"model": str(args.model), "split": args.split})
        print(f"kNN-LM datastore: {len(ids) - 1:,} (hidden state, next token) pairs of the {args.split} split -> {out} "
              f"(IVF{cfg.index.nlist},PQ{cfg.index.m}, {cfg.shards} shards)")
    else:
        chunks, x = embedded_chunks(Path(args.out).parent / "embeddings", max_chunks=args.max_chunks)
        cfg = DatastoreConfig(BuildConfig(nlist=args.nlist or default_nlist(len(x)), m=args.m or 48), shards=args.shards)
        out = build_chunk_datastore(chunks, x, args.out, cfg)
        print(f"chunk datastore: {len(chunks):,} docstring chunks -> {out} (IVF{cfg.index.nlist},PQ{cfg.index.m}, "
              f"{cfg.shards} shards)")
    return 0


def evaluate(args) -> int:
    from host.ralm.evaluate import retriever  # lazy: torch

    results = {}
    if args.kind == "knn":
        results = _eval_knn(args, retriever)
    else:
        results = _eval_chunks(args, retriever)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _eval_knn(args, retriever) -> dict:
    from host.ralm.evaluate import PerplexityConfig, base_perplexity, heldout_scores, knn_sweep  # lazy: torch

    ds = load_datastore(args.datastore, shards=[] if args.memory_nodes else None)
    if ds.values is None:
        raise InputError(f"{args.datastore} is a {ds.meta['kind']} datastore; eval knn needs a knn datastore")
    engine = _engine(args.model, args.threads)
    cfg = PerplexityConfig(lambdas=_floats(args.lambdas), ks=tuple(int(k) for k in _floats(args.ks)),
                           temperatures=_floats(args.temperatures), window=engine.max_model_len)
    _, val = lm_splits(args.model)
    logits, hidden, y = heldout_scores(engine, val.tolist(), cfg.window, args.max_tokens)
    base = base_perplexity(logits, y)
    print(f"held-out: {len(y):,} tokens of the LM's validation split; datastore: {ds.index.ntotal:,} keys "
          f"({ds.meta.get('split', '?')} split); base LM perplexity {base:.2f}")
    rows = []
    for lut_bits in (int(b) for b in _floats(args.lut_bits)):
        for nprobe in (int(n) for n in _floats(args.nprobes)):
            with retriever(ds, nprobe, max(cfg.ks), lut_bits, args.memory_nodes, args.backend) as retrieve:
                dist, ids = retrieve(hidden)
            tokens = ds.payload_of(ids)
            table = knn_sweep(logits, y, dist, tokens, cfg)
            (lam, k, t), ppl = min(table.items(), key=lambda kv: kv[1])
            print(f"nprobe {nprobe:3d} lut_bits {lut_bits:2d}: best kNN-LM perplexity {ppl:.2f} at lambda={lam}, "
                  f"K={k}, T={t} ({100 * (ppl / base - 1):+.1f} % vs base {base:.2f})")
            rows += [{"nprobe": nprobe, "lut_bits": lut_bits, "lambda": a, "k": b, "temperature": c, "ppl": v}
                     for (a, b, c), v in table.items()]
    best = min(rows, key=lambda r: r["ppl"])
    print(f"best: {best['ppl']:.2f} vs base {base:.2f} at {best}")
    return {"tokens": len(y), "datastore_keys": ds.index.ntotal, "base_ppl": base, "best": best, "rows": rows}


def _eval_chunks(args, retriever) -> dict:
    from pathlib import Path

    import numpy as np

    from host.ralm.evaluate import corpus_questions  # lazy: torch

    ds = load_datastore(args.datastore, shards=[] if args.memory_nodes else None)
    if ds.chunks is None:
        raise InputError(f"{args.datastore} is a {ds.meta['kind']} datastore; eval chunks needs a chunks datastore")
    embedder = Embedder()
    out = {}
    kinds = {kind: corpus_questions(ds.chunks, args.questions, kind) for kind in ("name", "excerpt")}
    for nprobe in (int(n) for n in _floats(args.nprobes)):
        with retriever(ds, nprobe, 10, int(_floats(args.lut_bits)[0]), args.memory_nodes, args.backend) as retrieve:
            def search(qx):
                return retrieve(qx)[1]
            out.update(_hit_rates(ds, kinds, embedder, search, f"IVF-PQ nprobe {nprobe}"))
    cache = args.cache or Path(args.datastore).parent / "embeddings"      # where `ralm build chunks` put them
    x = cached_embeddings([c["text"] for c in ds.chunks], cache, embedder)
    out.update(_hit_rates(ds, kinds, embedder, lambda qx: np.argsort(-(qx @ x.T), axis=1)[:, :10],
                          "exact search (reference)"))
    return out


def _hit_rates(ds, kinds, embedder, search, label) -> dict:
    from host.ralm.evaluate import hit_rate  # lazy: torch

    out = {}
    for kind, qs in kinds.items():
        ids = search(embedder.encode([q for q, _ in qs]))
        texts = ds.payload_of(ids)
        for k in (1, 10):
            rate = hit_rate(qs, lambda _: [[t for t in row[:k] if t] for row in texts])
            out[f"{kind}@{k} {label}"] = rate
            print(f"type-1 hit rate, {kind} questions, top-{k}, {label}: {rate:.3f} ({len(qs)} questions)")
    return out
