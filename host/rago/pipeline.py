"""Predicted vs measured for the whole RALM pipeline on localhost: the kNN-LM system of `make demo`.

The measured system: one memory node per shard of a kNN datastore (cpu backend, one thread each), one LLM
node (one thread), the RALM coordinator in this process; all on localhost over TCP.
A *wave* of C requests (C prompts of ``prompt_tokens`` tokens, ``max_tokens`` output tokens each, greedy)
goes out at once: the LLM node prefills the C prompts together, and before every token each request sends
its last hidden state, the step's C queries go to the memory nodes as one batch, and the neighbours are
mixed in (``host.ralm.flows``). Measured per C, as medians over the waves (the machine is shared): TTFT,
TPOT (a request's mean gap between tokens) and QPS = C / wave time. Alternating with the kNN-LM waves, the
LLM node alone in step mode (each step answered at once, no retrieval) gives its time per token beyond the
profiled forward pass: the engine's per-step cost the profile leaves out (``fit_engine_overhead``).

The same system as a RAGO schema (:func:`localhost_schema`): one accelerator = the LLM node, whose
latency is the fitted profile of the same model on one core (``anole llm profile``, run pinned to the
core the node gets); ``cpu_server`` x shards with one core each, whose scan rate, per-query and per-batch
costs and the coordinator's cost are calibrated on the same index (``host.rago.calibrate``); retrieval
per token (``retrievals_per_request`` = output tokens) with the codes per query the nodes counted. Each
C is predicted by ``Optimizer.evaluate`` (prefix + decode collocated on the one chip at batch C, the
retrieval batch C) and compared by ``host.rago.validate``.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.index.index_dir import load_index
from host.net.frames import parse_address
from host.rago.calibrate import apply_calibration, calibrate, load_calibration
from host.rago.llm_latency import FittedLatency
from host.rago.localhost import fit_coordinator
from host.rago.schema import load_schema
from host.rago.validate import report, validate
from host.rago.waves import Waves
from host.ralm.cluster import LocalCluster
from host.ralm.datastore import load_datastore
from host.serve.coordinator import Coordinator, CoordinatorConfig
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PipelineConfig:
    """What is measured: ``concurrency`` (requests per wave, = every batch size), ``waves`` per C."""

    model: Path
    datastore: Path
    workdir: Path = Path("build/rago/pipeline")
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    waves: int = 15
    prompt_tokens: int = 32
    max_tokens: int = 32
    nprobe: int = 8
    k: int = 32
    llm_cpu: int = 0               # the core the latency profile is pinned to (one core: the node's one thread)
    profile_repeats: int = 3
    seed: int = 0

    def __post_init__(self):
        self.model, self.datastore, self.workdir = Path(self.model), Path(self.datastore), Path(self.workdir)
        if not self.concurrency or min(self.concurrency) < 1 or self.waves < 1 or self.max_tokens < 2 \
                or self.prompt_tokens < 1 or self.nprobe < 1 or self.k < 1:
            raise InputError(f"bad pipeline settings: concurrency={self.concurrency}, waves={self.waves}, "
                             f"max_tokens={self.max_tokens} (>= 2), prompt_tokens={self.prompt_tokens}, "
                             f"nprobe={self.nprobe}, k={self.k}")
        if self.llm_cpu not in os.sched_getaffinity(0):
            raise InputError(f"llm_cpu {self.llm_cpu} is not one of this process's cores "
                             f"{sorted(os.sched_getaffinity(0))}")


def profile_llm(cfg: PipelineConfig) -> Path:
    """The model's latency profile on one core (a subprocess pinned to ``llm_cpu``), made once."""
    out = cfg.workdir / f"latency-{cfg.model.name}-cpu{cfg.llm_cpu}.json"
    if not out.is_file():
        log.info("profiling %s on core %d -> %s", cfg.model, cfg.llm_cpu, out)
        subprocess.run([sys.executable, "-m", "host.cli", "llm", "profile", "--model", str(cfg.model), "--out",
                        str(out), "--repeats", str(cfg.profile_repeats)], check=True, stdout=subprocess.DEVNULL,
                       preexec_fn=lambda: os.sched_setaffinity(0, {cfg.llm_cpu}))
    return out


def calibrate_index(cfg: PipelineConfig) -> dict:
    """The scan / RPC / coordinator calibration on the datastore's own index (made once)."""

    out = cfg.workdir / "calibration.json"
    if not out.is_file():
        calibrate(out, index=load_index(cfg.datastore / "index"))
    return load_calibration(out)


def measure(cfg: PipelineConfig, out=print) -> dict:
    """Start the servers; for every C time the LLM node alone in step mode (``engine``: seconds per token at
    batch C) and run the kNN-LM waves (``runs``: C, ttft_ms, tpot_ms, qps, codes_per_query)."""

    ds = load_datastore(cfg.datastore, shards=[])
    nshards = int(ds.index.manifest["nshards"])
    with LocalCluster(cfg.workdir / "logs") as cluster:
        procs = [cluster.spawn(f"memory node {s}", ["serve", "memory-node", "--index", str(cfg.datastore / "index"),
                                                    "--shard", str(s), "--port", "0", "--backend", "cpu",
                                                    "--k", str(cfg.k), "--threads", "1"]) for s in range(nshards)]
        llm = cluster.spawn("llm node", ["serve", "llm-node", "--model", str(cfg.model), "--port", "0",
                                         "--threads", "1", "--kv-blocks", "1024"])
        addrs = [cluster.wait_ready(p) for p in procs]
        llm_addr = cluster.wait_ready(llm)
        out(f"  {nshards} memory nodes {', '.join(addrs)}; LLM node {llm_addr}")
        runs, engine, retrieval = asyncio.run(_drive(cfg, ds, addrs, llm_addr, out))
    return {"engine": engine, "retrieval": retrieval, "system": {"nodes": nshards, "ntotal": int(ds.index.ntotal), "d": int(ds.index.d), "m": int(ds.index.m),
                       "nlist": int(ds.index.nlist), "nprobe": cfg.nprobe, "k": cfg.k,
                       "prompt_tokens": cfg.prompt_tokens, "max_tokens": cfg.max_tokens, "waves": cfg.waves},
            "runs": runs}


async def _drive(cfg: PipelineConfig, ds, addrs: list[str], llm_addr: str, out) -> tuple[list, list, list]:
    """(runs, engine, retrieval) of every concurrency in ``cfg.concurrency``, measured as ``Waves`` does."""
    from host.ralm.flows import RalmConfig, RalmCoordinator  # lazy: torch
    from llm_node.client import LLMClient  # lazy: torch

    coord = Coordinator(ds.index, addrs, ScanParams(m=ds.index.m, k=cfg.k), CoordinatorConfig(max_batch=256))
    llm = await LLMClient.connect(*parse_address(llm_addr))
    try:
        await coord.connect()
        ralm = RalmCoordinator(llm, RalmConfig(nprobe=cfg.nprobe, k=cfg.k), knn=coord, knn_values=ds.values)
        waves = Waves(cfg, coord, llm, ralm, vocab=int((await ralm.check())["vocab_size"]))
        await asyncio.gather(*(waves.ralm_request(p) for p in waves.prompts(2)))    # warm up (JIT, connections)
        runs, engine, retrieval = [], [], []
        for c in cfg.concurrency:
            run, step, search = await waves.measure(c)
            out(f"  C={c}: TTFT {run['ttft_ms']:.2f} ms, TPOT {run['tpot_ms']:.2f} ms, {run['qps']:.2f} req/s, "
                f"{run['codes_per_query']:.0f} codes/query; alone: LLM node {step['step_s'] * 1e3:.2f} ms/token, "
                f"retrieval {search['seconds'] * 1e3:.2f} ms")
            runs.append(run)
            engine.append(step)
            retrieval.append(search)
        return runs, engine, retrieval
    finally:
        await llm.close()
        await coord.close()


def localhost_schema(system: dict, latency_model: str | Path, codes_per_query: float) -> dict:
    """The measured system as a RAGO schema mapping (YAML-able); the calibration is applied on top."""
    hidden = system["d"]
    return {
        "name": "localhost kNN-LM",
        "models": {"lm": {"params_b": system["params"] / 1e9, "layers": system["layers"], "hidden": hidden,
                          "bytes_per_param": 4, "latency_model": str(latency_model)}},
        "stages": {
            "retrieval": {"vectors": system["ntotal"], "dim": hidden, "pq_bytes": system["m"],
                          "nprobe_fraction": min(1.0, codes_per_query / system["ntotal"]), "k": system["k"],
                          "id_bytes": 8, "retrievals_per_request": system["max_tokens"], "retrieved_tokens": 0},
            "prefix": {"model": "lm", "prompt_tokens": system["prompt_tokens"]},
            "decode": {"model": "lm", "output_tokens": system["max_tokens"]}},
        "resources": {
            "gpu": {"count": 1, "tflops": 0.05, "mem_bw_gbs": 10, "memory_gb": 8, "cost": 1.0,
                    "source": "this machine's CPU core running the LLM node (latency: the fitted profile; "
                              "peak figures unused)"},
            "cpu_server": {"count": system["nodes"], "cores": 1, "memory_gb": 8, "mem_bw_gbs": 10, "cost": 0.3,
                           "source": "assumption: one memory-node process on one core of this machine"},
            "network": {"bandwidth_gbs": 5, "source": "assumption: localhost TCP"}},
        "search": {"max_batch": max(1, 1 << (max(system["concurrency"]) - 1).bit_length()),
                   "max_decode_batch": max(1, 1 << (max(system["concurrency"]) - 1).bit_length()),
                   "max_chips": 1, "max_tp": 1, "max_node_factor": 1},
    }


def fit_engine_overhead(engine: list[dict], latency_model: str | Path, context: int) -> dict:
    """``step_us`` + ``step_per_seq_us`` x B: the LLM node's time per step-mode token beyond the profiled
    forward pass (non-negative least squares over the batches measured)."""
    from scipy.optimize import nnls

    fwd = FittedLatency(latency_model)
    b = np.array([e["batch"] for e in engine], float)
    extra = np.array([e["step_s"] - fwd.decode_step(int(e["batch"]), context) for e in engine])
    if len(set(b)) > 1:
        (a, per), _ = nnls(np.stack([np.ones_like(b), b], 1), extra)
    else:                                    # one batch size: all of it is the fixed part
        a, per = max(0.0, float(extra.mean())), 0.0
    return {"step_us": float(a) * 1e6, "step_per_seq_us": float(per) * 1e6, "context": context, "points": engine}


def measurements(runs: list[dict], nodes: int) -> dict:
    """The runs as ``host.rago.validate`` 'pipeline' measurements (one plan per concurrency)."""
    return {"source": "host.rago.pipeline (kNN-LM on localhost)", "measurements": [
        {"what": "pipeline", "groups": [{"stages": ["prefix", "decode"], "chips": 1, "tp": 1,
                                         "batch": {"prefix": r["concurrency"], "decode": r["concurrency"]}}],
         "retrieval": {"kind": "cpu_server", "nodes": nodes, "batch": r["concurrency"]},
         "ttft_ms": r["ttft_ms"], "tpot_ms": r["tpot_ms"], "qps": r["qps"]} for r in runs]}


def model_facts(model: Path) -> dict:
    """Parameters and layers of a checkpoint folder (for the schema's memory check)."""
    from safetensors import safe_open

    with safe_open(str(model / "model.safetensors"), "np") as f:
        params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    conf = json.loads((model / "config.json").read_text())
    return {"params": params, "layers": int(conf.get("num_hidden_layers", conf.get("n_layer", 1)))}


def run(cfg: PipelineConfig, out=print) -> dict:
    """Profile, calibrate, measure, predict: {"schema", "measurements", "checks"} written under workdir."""
    import yaml

    cfg.workdir.mkdir(parents=True, exist_ok=True)
    out(f"[1/4] latency profile of {cfg.model} on core {cfg.llm_cpu}")
    lat = profile_llm(cfg)
    out("[2/4] calibrating the CPU scan, RPC and coordinator on the datastore's index")
    cal = calibrate_index(cfg)
    out(f"[3/4] measuring the kNN-LM pipeline, C in {list(cfg.concurrency)}, {cfg.waves} waves each")
    meas = measure(cfg, out)
    system = {**meas["system"], **model_facts(cfg.model), "concurrency": list(cfg.concurrency)}
    cpq = float(np.mean([r["codes_per_query"] for r in meas["runs"]]))
    schema_file = cfg.workdir / "localhost.yaml"
    schema_file.write_text(yaml.safe_dump(localhost_schema(system, lat.resolve(), cpq), sort_keys=False))
    mfile = cfg.workdir / "measurements.json"
    mdict = {**measurements(meas["runs"], system["nodes"]), "system": system, "runs": meas["runs"]}
    mfile.write_text(json.dumps(mdict, indent=1) + "\n")
    cal["rpc"].update(fit_coordinator(cal, meas["retrieval"]))          # the deployed nodes, not in-process ones
    cal["llm_node"] = fit_engine_overhead(meas["engine"], lat, cfg.prompt_tokens + cfg.max_tokens // 2)
    cal["llm_node"]["source"] = "step mode without retrieval, host.rago.pipeline"
    (cfg.workdir / "calibration.json").write_text(json.dumps(cal, indent=1) + "\n")
    out(f"  LLM node per step beyond the forward pass: {cal['llm_node']['step_us']:.0f} us + "
        f"{cal['llm_node']['step_per_seq_us']:.0f} us x batch; coordinator per retrieval batch "
        f"{cal['rpc']['coordinator_us']:.0f} us")
    schema = apply_calibration(load_schema(schema_file), cal, str(cfg.workdir / "calibration.json"))
    checks = validate({"measurements": mdict["measurements"]}, schema)
    out(f"[4/4] predicted vs measured (schema {schema_file}, measurements {mfile}):\n" + report(checks))
    return {"schema": str(schema_file), "measurements": str(mfile), "checks": checks, "runs": meas["runs"]}
