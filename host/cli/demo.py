"""`anole demo`: the end-to-end demo that `make demo` runs."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from host.rago.plan import demo_settings
from host.ralm.demo import run
from host.ralm.demo_setup import DemoConfig
from host.spec.errors import InputError
from llm_node.defaults import DEMO_MODEL


def register(sub, groups):
    p = sub.add_parser("demo", help="the end-to-end RALM demo (what `make demo` runs)",
                       description="Start memory nodes (kNN-LM and chunk datastores, --shards each) and an LLM node "
                                   "on localhost, drive them from the RALM coordinator over TCP: type-2 (kNN-LM) and "
                                   "type-1 (chunk retrieval) requests, streamed; print a latency breakdown and the "
                                   "projected scan time on an FPGA. The first run trains the small model and builds "
                                   "the datastores (cached under --workdir and build/llm).")
    p.add_argument("--workdir", default="build/demo", help="cache for datastores, logs, plot (default build/demo)")
    p.add_argument("--model", default=str(DEMO_MODEL), help="checkpoint folder; trained if missing")
    p.add_argument("--train-minutes", type=float, default=3.0, help="training budget if the model is missing (3)")
    p.add_argument("--knn-tokens", type=int, default=100_000,
                   help="training-split tokens in the demo's kNN datastore (default 100000; 0 = all)")
    p.add_argument("--max-chunks", type=int, default=2000,
                   help="docstring chunks in the type-1 datastore, an even sample (default 2000; 0 = all 6640)")
    p.add_argument("--backend", default="cpu", help="memory-node scan backend: cpu (default), verilator, ...")
    p.add_argument("--shards", type=int, default=2, help="memory nodes per datastore (default 2)")
    tuned = " (default: chosen on the held-out dev split, DATASTORE/tuned.json)"
    p.add_argument("--nprobe", type=int, default=None, help="IVF lists probed, both datastores" + tuned)
    p.add_argument("--k", type=int, default=None,
                   help="neighbours per kNN-LM step" + tuned + "; at most 10 with --backend verilator, whose k=100 "
                        "top-K core does not compile with this g++")
    p.add_argument("--lam", type=float, default=None, help="kNN-LM interpolation weight" + tuned)
    p.add_argument("--knn-temperature", type=float, default=None, help="softmax temperature of -distance" + tuned)
    p.add_argument("--lut-bits", type=int, default=None, help="table entry width, both datastores" + tuned)
    p.add_argument("--interval", type=int, default=16, help="type 1: tokens between retrievals (default 16)")
    p.add_argument("--max-tokens", type=int, default=32, help="tokens per request (default 32)")
    p.add_argument("--lanes", type=int, default=4, help="FPGA projection: kernel lanes (default 4)")
    p.add_argument("--clock-mhz", type=float, default=150.0, help="FPGA projection: clock (default 150 MHz)")
    p.add_argument("--rtl-summary", default="build/sim/scan_summary.json",
                   help="`anole sim scan --json` output with the measured codes/cycle (used if it exists)")
    p.add_argument("--threads", type=int, default=1, help="torch/backend threads per server (default 1)")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--plan", help="a plan from `anole rago optimize --plan-out`: sets the memory nodes per "
                                  "datastore and the coordinator's batching (max batch, max wait)")
    p.set_defaults(func=demo)


def demo(args) -> int:
    plan = {"shards": args.shards, "max_batch": 256, "max_wait_s": 0.0}
    if args.plan:
        try:
            plan = demo_settings(json.loads(Path(args.plan).read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read plan {args.plan}: {e}") from None
        logging.getLogger(__name__).info("plan %s: %d memory nodes per datastore, max batch %d, max wait %.3g ms "
                                         "(the plan's %d LLM nodes run as one here)", args.plan, plan["shards"],
                                         plan["max_batch"], plan["max_wait_s"] * 1e3, plan["llm_nodes"])
    run(DemoConfig(workdir=args.workdir, model=args.model, train_minutes=args.train_minutes,
                   knn_tokens=args.knn_tokens, max_chunks=args.max_chunks, backend=args.backend, shards=plan["shards"],
                   nprobe=args.nprobe, k=args.k, lam=args.lam, knn_temperature=args.knn_temperature,
                   lut_bits=args.lut_bits, interval=args.interval,
                   max_tokens=args.max_tokens, lanes=args.lanes, clock_mhz=args.clock_mhz,
                   rtl_summary=args.rtl_summary, threads=args.threads, plot=not args.no_plot,
                   max_batch=plan["max_batch"], max_wait_s=plan["max_wait_s"]))
    return 0
