"""The end-to-end RALM demo (`make demo`): memory nodes and an LLM node as local processes, driven by the
RALM coordinator over TCP; type 2 (kNN-LM) and type 1 (chunk retrieval) requests, streamed; a latency
breakdown and the projected scan time on an FPGA. Builds what it needs on the first run (model, datastores)
and caches it under ``workdir``."""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np

from host.net.frames import parse_address
from host.ralm.cluster import LocalCluster
from host.ralm.corpus import Embedder
from host.ralm.datastore import load_datastore
from host.ralm.demo_api import api_args, show_api
from host.ralm.demo_setup import DemoConfig, apply_tuned, ensure_datastores, ensure_model
from host.ralm.report import fpga_projection, latency_table, plot_latency
from host.serve.coordinator import Coordinator, CoordinatorConfig
from host.spec.scan_params import ScanParams
from llm_node.tokenizer import Tokenizer

log = logging.getLogger(__name__)

CODE_PROMPTS = ["import os\nimport sys\n\n\ndef main(", "    def __init__(self, name", "class Error(Exception):\n",
                "        for line in lines:\n            if"]
QUESTIONS = ["How do I parse a JSON document from a string?", "Open a gzip compressed file for reading",
             "Run a child process and capture its output"]


SAMPLING = {"temperature": 0.8, "top_k": 40, "ignore_eos": True}
"""How the demo samples (the kNN-LM and chunk requests alike)."""


def run(cfg: DemoConfig, out=print) -> dict:
    t_start = time.perf_counter()
    ensure_model(cfg, out)
    knn_dir, chunk_dir = ensure_datastores(cfg, out)
    cfg, tuned_knn, _ = apply_tuned(cfg, knn_dir, chunk_dir)
    out(f"      {tuned_knn.summary()} ({knn_dir / 'tuned.json'}; flags override it)")
    out(f"[3/6] starting {2 * cfg.shards} memory nodes (backend {cfg.backend}), an LLM node and the API on localhost "
        f"(logs in {cfg.workdir / 'logs'})")
    with LocalCluster(cfg.workdir / "logs") as cluster:
        t0 = time.perf_counter()
        k = max(cfg.k, 10)
        procs, addrs = {}, {}
        for s in range(cfg.shards):
            for name, store, bits in (("knn", knn_dir, cfg.lut_bits), ("chunks", chunk_dir, cfg.chunk_lut_bits)):
                procs[(name, s)] = cluster.spawn(
                    f"memory node {name} {s}", ["serve", "memory-node", "--index", str(store / "index"), "--shard",
                                                str(s), "--port", "0", "--backend", cfg.backend, "--k", str(k),
                                                "--lut-bits", str(bits), "--threads", str(cfg.threads)])
                if cfg.backend == "verilator" and s == 0:  # the first node of a datastore builds the harness
                    out(f"      building the Verilated scan core for {name} (m={load_m(store)}, k={k}) ...")
                    addrs[(name, s)] = cluster.wait_ready(procs[(name, s)], timeout=900)
        llm_proc = cluster.spawn("llm node", ["serve", "llm-node", "--model", str(cfg.model), "--port", "0",
                                              "--threads", str(cfg.threads), "--kv-blocks", "512"])
        addrs.update({key: cluster.wait_ready(p, timeout=900) for key, p in procs.items() if key not in addrs})
        llm_addr = cluster.wait_ready(llm_proc)
        for (name, s), a in addrs.items():
            out(f"      memory node {name} shard {s}: {a}")
        api_addr = cluster.start("api", api_args(cfg, llm_addr, knn_dir, chunk_dir, addrs), timeout=900)
        out(f"      llm node: {llm_addr}, OpenAI-compatible API: http://{api_addr} "
            f"({time.perf_counter() - t0:.1f} s to start everything)")
        result = asyncio.run(_drive(cfg, knn_dir, chunk_dir, addrs, llm_addr, out))
        out("\n[5/6] the same through the OpenAI-compatible API (docs/api.md)")
        result["api"] = show_api(f"http://{api_addr}", cfg.max_tokens, out)
        out(f"[6/6] stopping {len(cluster.alive())} server processes")
    result["seconds"] = time.perf_counter() - t_start
    out(f"done in {result['seconds']:.0f} s")
    return result


async def _drive(cfg, knn_dir, chunk_dir, addrs, llm_addr, out) -> dict:
    """Connect the RALM coordinator to the servers, then run the type 2 and type 1 requests."""
    from llm_node.client import LLMClient  # lazy: torch

    knn_ds, chunk_ds = load_datastore(knn_dir, shards=[]), load_datastore(chunk_dir, shards=[])
    ccfg = CoordinatorConfig(max_batch=cfg.max_batch, max_wait_s=cfg.max_wait_s)
    coords = {name: Coordinator(ds.index, [a for (n, _), a in sorted(addrs.items()) if n == name],
                                ScanParams(m=ds.index.m, k=cfg.k, lut_bits=bits), ccfg)
              for name, ds, bits in (("knn", knn_ds, cfg.lut_bits), ("chunks", chunk_ds, cfg.chunk_lut_bits))}
    llm = await LLMClient.connect(*parse_address(llm_addr))
    try:
        for c in coords.values():
            await c.connect()
        tok = Tokenizer(cfg.model)
        ralm = _ralm(cfg, llm, coords, knn_ds, chunk_ds, tok)
        await ralm.check()
        rng = np.random.default_rng(0)           # warm-up (JIT, connections), not measured
        for name, ds in (("knn", knn_ds), ("chunks", chunk_ds)):
            await coords[name].search(rng.standard_normal((4, ds.index.d)).astype(np.float32), 1)
        results = await _type2(cfg, ralm, coords["knn"], knn_ds, tok, out)
        results["type1"] = await _type1(cfg, ralm, chunk_ds, out)
        if cfg.plot:
            path = plot_latency(results, cfg.workdir / "ralm_latency.png")
            out(f"\n  latency plot: {path}")
        return results
    finally:
        await llm.close()
        for c in coords.values():
            await c.close()


def _ralm(cfg: DemoConfig, llm, coords: dict, knn_ds, chunk_ds, tok):
    from host.ralm.flows import RalmConfig, RalmCoordinator  # lazy: torch

    rcfg = RalmConfig(nprobe=cfg.nprobe, chunk_nprobe=cfg.chunk_nprobe, k=cfg.k, lam=cfg.lam,
                      knn_temperature=cfg.knn_temperature,
                      interval=cfg.interval, chunk_template='"""{chunk}"""\n')
    return RalmCoordinator(llm, rcfg, knn=coords["knn"], knn_values=knn_ds.values, chunks=coords["chunks"],
                           chunk_texts=[c["text"] for c in chunk_ds.chunks], embedder=Embedder(), tokenizer=tok)


async def _type2(cfg: DemoConfig, ralm, coord, knn_ds, tok, out) -> dict:
    """The kNN-LM requests, the first one streamed; its latency table and the FPGA projection."""
    out(f"\n[4/6] type 2 (kNN-LM): {len(CODE_PROMPTS)} concurrent requests, {cfg.max_tokens} tokens each; "
        f"every token queries {knn_ds.index.ntotal:,} keys (IVF{knn_ds.index.nlist},PQ{knn_ds.index.m}, nprobe "
        f"{cfg.nprobe}, lut_bits {cfg.lut_bits}, K={cfg.k}), lambda={cfg.lam}, T={cfg.knn_temperature}; "
        "sampling T=0.8, top-k 40; "
        "streaming request 1:\n")
    before = await coord.node_stats()
    t0 = time.perf_counter()
    shown = _Streamer(tok, out, CODE_PROMPTS[0])
    res = await asyncio.gather(*(ralm.generate_knn(tok.encode(p), cfg.max_tokens, seed=i, **SAMPLING,
                                                   on_token=shown.token if i == 0 else None)
                                 for i, p in enumerate(CODE_PROMPTS)))
    wall = time.perf_counter() - t0
    shown.end()
    after = await coord.node_stats()
    for p, r in list(zip(CODE_PROMPTS, res))[1:]:
        out(f"  request: {p!r} -> {r.text!r}")
    ntok = sum(len(r.token_ids) for r in res)
    out(f"  {ntok} tokens in {wall:.2f} s ({ntok / wall:.1f} tokens/s over the batch)")
    table = latency_table([s for r in res for s in r.steps], out, "type 2, per token")
    proj = fpga_projection(before, after, cfg.lanes, cfg.clock_mhz, cfg.rtl_summary, cfg.backend)
    out("  " + proj["line"])
    return {"type2": table, "fpga": proj}


async def _type1(cfg: DemoConfig, ralm, chunk_ds, out) -> dict:
    """The chunk-retrieval requests: what each retrieved and generated; their latency table."""
    out(f"\n      type 1 (chunks): {len(QUESTIONS)} concurrent requests; every {cfg.interval} tokens MiniLM embeds "
        f"the recent text, retrieves the nearest of {chunk_ds.index.ntotal:,} docstring chunks (nprobe "
        f"{cfg.chunk_nprobe}), re-prefills\n")
    t0 = time.perf_counter()
    res = await asyncio.gather(*(ralm.generate_chunks(f"# {q}\ndef ", cfg.max_tokens, seed=i, **SAMPLING)
                                 for i, q in enumerate(QUESTIONS)))
    wall = time.perf_counter() - t0
    for q, r in zip(QUESTIONS, res):
        chunk = r.retrieved[0] if r.retrieved else ""
        out(f"  Q: {q}\n     retrieved: {chunk[:110]!r}{'...' if len(chunk) > 110 else ''}\n"
            f"     generated: {r.text!r}")
    out(f"  {sum(len(r.token_ids) for r in res)} tokens in {wall:.2f} s")
    return latency_table([s for r in res for s in r.steps], out, "type 1, per retrieval interval")


def load_m(store: Path) -> int:
    import json

    return int(json.loads((store / "index" / "manifest.json").read_text())["m"])


class _Streamer:
    """Prints the text of one request as its tokens arrive."""

    def __init__(self, tok, out, prompt: str):
        self.tok, self.out, self.ids, self.shown = tok, out, [], ""
        print(prompt, end="", flush=True) if out is print else None

    def token(self, t: int) -> None:
        self.ids.append(t)
        text = self.tok.decode(self.ids)
        if self.out is print:
            print(text[len(self.shown):], end="", flush=True)
        self.shown = text

    def end(self) -> None:
        self.out("\n" if self.out is print else f"  request 1 -> {self.shown!r}")
