"""`anole ralm build chunks|knn`, `anole ralm eval knn|chunks`: RALM datastores and their quality."""
from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np

from host.index.builder import BuildConfig
from host.cli.common import group
from host.ralm.corpus import Embedder
from host.ralm.datastore import (DatastoreConfig, build_chunk_datastore, build_knn_datastore, check_model,
                                 default_nlist, load_datastore)
from host.ralm.splits import cached_embeddings, dev_test, embedded_chunks, lm_files
from host.ralm.tuned import PerplexityConfig, save_tuned
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
    p.add_argument("--no-tune", action="store_true", help="skip choosing the settings on the dev split")
    _protocol_args(p)
    p.set_defaults(func=build)

    p = ralm.add_parser("eval", help="kNN-LM perplexity or type-1 hit rates: chosen on dev, reported on test",
                        description="knn: the LM's held-out files split into dev and test by file (--seed); lambda x "
                                    "K x temperature x nprobe x lut_bits chosen by dev perplexity, reported on test "
                                    "beside the base LM, and the gain with and without test positions whose preceding "
                                    "16-gram occurs in the datastore's text. chunks: corpus questions split into dev "
                                    "and test; nprobe x lut_bits chosen by the dev top-10 hit rate; test hit rates "
                                    "beside exact search. The choice is saved as DATASTORE/tuned.json (the demo's "
                                    "and the API's defaults).")
    p.add_argument("kind", choices=["knn", "chunks"])
    p.add_argument("--datastore", required=True, help="datastore folder (anole ralm build)")
    p.add_argument("--model", default=str(DEMO_MODEL), help="knn: checkpoint folder")
    p.add_argument("--memory-nodes", default="", help="H:P,...: retrieve through memory nodes (default in-process)")
    p.add_argument("--backend", default="cpu", help="in-process scan backend (default cpu)")
    _protocol_args(p)
    p.add_argument("--no-save", action="store_true", help="do not write DATASTORE/tuned.json")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=evaluate)


def _protocol_args(p) -> None:
    d = PerplexityConfig.__dataclass_fields__
    p.add_argument("--lambdas", default=_csv(d["lambdas"].default), help="knn: interpolation weights swept")
    p.add_argument("--ks", default=_csv(d["ks"].default), help="knn: neighbours swept (1..100)")
    p.add_argument("--temperatures", default=_csv(d["temperatures"].default), help="knn: softmax temperatures swept")
    p.add_argument("--nprobes", default=_csv(d["nprobes"].default), help="IVF lists probed, swept")
    p.add_argument("--lut-bits", default=_csv(d["lut_bits"].default), help="table entry widths swept (8..16)")
    p.add_argument("--seed", type=int, default=0, help="dev/test split seed (default 0)")
    p.add_argument("--questions", type=int, default=200, help="chunks: questions of each kind (default 200)")
    p.add_argument("--cache", default=None, help="chunks: where MiniLM embeddings of the chunks are cached, for "
                                                 "the exact-search reference (default: DATASTORE/../embeddings)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")


def _csv(xs) -> str:
    return ",".join(f"{x:g}" for x in xs)


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise InputError(f"expected a comma list of numbers, not {s!r}") from None


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in _floats(s))


def _protocol(args, window: int = 128) -> PerplexityConfig:
    return PerplexityConfig(lambdas=_floats(args.lambdas), ks=_ints(args.ks), temperatures=_floats(args.temperatures),
                            nprobes=_ints(args.nprobes), lut_bits=_ints(args.lut_bits), window=window, seed=args.seed)


def _engine(model: str, threads: int):
    import torch

    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch

    if threads:
        torch.set_num_threads(threads)
    return LLMEngine(EngineConfig(model, num_kv_blocks=64))


def build(args) -> int:
    if args.kind == "knn":
        _protocol(args)                                  # bad sweep flags fail before the long build
        engine = _engine(args.model, args.threads)
        train, files = lm_files(args.model)
        ids = train if args.split == "train" else np.concatenate(files)
        ids = ids[: args.max_tokens] if args.max_tokens else ids
        cfg = DatastoreConfig(BuildConfig(nlist=args.nlist or default_nlist(len(ids)), m=args.m or 32),
                              shards=args.shards)
        out = build_knn_datastore(engine, ids.tolist(), args.out, cfg, window=args.window or None,
                                  meta={"model": str(args.model), "split": args.split})
        print(f"kNN-LM datastore: {len(ids) - 1:,} (hidden state, next token) pairs of the {args.split} split -> {out} "
              f"(IVF{cfg.index.nlist},PQ{cfg.index.m}, {cfg.shards} shards)")
        if not args.no_tune:
            _tune_knn(args, engine, load_datastore(out), files, ids)
    else:
        chunks, x = embedded_chunks(Path(args.out).parent / "embeddings", max_chunks=args.max_chunks)
        cfg = DatastoreConfig(BuildConfig(nlist=args.nlist or default_nlist(len(x)), m=args.m or 48),
                              shards=args.shards)
        out = build_chunk_datastore(chunks, x, args.out, cfg)
        print(f"chunk datastore: {len(chunks):,} docstring chunks -> {out} (IVF{cfg.index.nlist},PQ{cfg.index.m}, "
              f"{cfg.shards} shards)")
        if not args.no_tune:
            _tune_chunks(args, load_datastore(out), x, Embedder())
    return 0


def evaluate(args) -> int:
    ds = load_datastore(args.datastore, shards=[] if args.memory_nodes else None)
    if args.kind == "knn":
        if ds.values is None:
            raise InputError(f"{args.datastore} is a {ds.meta['kind']} datastore; eval knn needs a knn datastore")
        check_model(ds.meta, args.model)                 # before the model is loaded or anything scored
        engine = _engine(args.model, args.threads)
        train, files = lm_files(args.model)
        stored = train if ds.meta.get("split", "train") == "train" else np.concatenate(files)
        results = _tune_knn(args, engine, ds, files, stored[: ds.index.ntotal + 1])
    else:
        if ds.chunks is None:
            raise InputError(f"{args.datastore} is a {ds.meta['kind']} datastore; eval chunks needs a chunks datastore")
        embedder = Embedder()
        cache = args.cache or Path(args.datastore).parent / "embeddings"      # where `ralm build chunks` put them
        results = _tune_chunks(args, ds, cached_embeddings([c["text"] for c in ds.chunks], cache, embedder), embedder)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


def _opener(args, ds):
    from host.ralm.evaluate import retriever  # lazy: torch

    return partial(retriever, ds, memory_nodes=getattr(args, "memory_nodes", ""),
                   backend=getattr(args, "backend", "cpu"))


def _tune_knn(args, engine, ds, files: list, stored) -> dict:
    from host.ralm.tune_knn import tune_knn  # lazy: torch

    cfg = _protocol(args, engine.max_model_len)
    dev, test = dev_test(files, cfg.seed, cfg.dev_fraction)
    res = _save(args, ds, tune_knn(engine, ds, args.model, dev, test, cfg, train_ids=stored,
                                   open_retriever=_opener(args, ds)))
    return {"tuned": asdict(res["tuned"]), "rows": res["rows"]}


def _tune_chunks(args, ds, x, embedder) -> dict:
    from host.ralm.tune_chunks import tune_chunks  # lazy: torch

    res = _save(args, ds, tune_chunks(ds, embedder, x, args.questions, _ints(args.nprobes), _ints(args.lut_bits),
                                      args.seed, open_retriever=_opener(args, ds)))
    return {"tuned": asdict(res["tuned"]),
            "rows": [{**r, "rates": {" ".join(map(str, k)): v for k, v in r["rates"].items()}} for r in res["rows"]]}


def _save(args, ds, res: dict) -> dict:
    for line in res["tuned"].lines():
        print(line)
    if not getattr(args, "no_save", False):
        print(f"saved the dev-chosen settings: {save_tuned(ds.path, res['tuned'])}")
    return res
