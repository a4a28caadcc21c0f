"""`anole rago ...`: RAG schema -> Pareto frontier and plan; calibration; the paradigm findings; validation."""
from __future__ import annotations

import json
from pathlib import Path

from host.cli.common import group
from host.rago import findings as F
from host.rago.calibrate import apply_calibration, load_calibration
from host.rago.calibrate import calibrate as run_calibration
from host.rago.findings import FILES, paradigm
from host.rago.optimizer import Optimizer
from host.rago.pipeline import PipelineConfig
from host.rago.pipeline import run as run_pipeline
from host.rago.plot import finding_figure, plan_figure
from host.rago.schema import load_schema
from host.rago.validate import load_measurements, report
from host.rago.validate import validate as run_validation
from host.spec.errors import InputError
from llm_node.defaults import DEMO_MODEL

DEFAULT_CALIBRATION = "build/rago/calibration.json"


def register(sub, groups):
    g = group(sub, groups, "rago", "RAG serving optimizer: schema -> Pareto frontier, plan (docs/rago.md)")
    p = g.add_parser("optimize", help="search placement, allocation and batching; print the frontier and plan",
                     description="Search placement (collocated / disaggregated stages), allocation (GPUs, retrieval "
                                 "nodes) and per-stage batch sizes for a RAG schema; print the Pareto frontier of "
                                 "TTFT vs QPS per cost and the plan with the most QPS per cost under the TTFT SLO.")
    p.add_argument("schema", help="schema .yaml/.json, or a shipped paradigm: hyperscale, long_context, iterative, "
                                  "rewriter_reranker")
    p.add_argument("--calibration", help="calibration JSON (anole rago calibrate): measured CPU scan rate and RPC cost")
    p.add_argument("--slo-ttft", type=float, metavar="MS", help="TTFT SLO in ms (default: the schema's)")
    p.add_argument("--plot", metavar="PNG", help="write the frontier and the plan's TTFT breakdown here")
    p.add_argument("--json", action="store_true", help="print JSON (frontier, plan, coefficients) instead of text")
    p.add_argument("--plan-out", metavar="JSON", help="write the chosen plan here (`anole demo --plan` reads it)")
    p.set_defaults(func=optimize)

    p = g.add_parser("calibrate", help="measure the CPU scan backend, RPC and a memory node; write the calibration",
                     description="Build a small synthetic IVF-PQ index, time the CPU scan backend on one thread over "
                                 "a grid of (nq, nprobe), fit codes/s/core and overheads, time host.net round trips "
                                 "and searches through a memory node and the coordinator on localhost, and write "
                                 "the calibration JSON.")
    p.add_argument("--out", default=DEFAULT_CALIBRATION, help=f"calibration JSON (default {DEFAULT_CALIBRATION})")
    p.add_argument("--rtl-summary", metavar="JSON", help="summary of the RTL scan bench (sim/scan, ANOLE_BENCH_OUT, "
                                                        "throughput mode): measured codes/cycle of the FPGA kernel")
    p.set_defaults(func=calibrate)

    p = g.add_parser("findings", help="reproduce the four RAGO paradigm findings; write their plots",
                     description="Run the model on the shipped paradigms (hyperscale, long-context, iterative, "
                                 "rewriter + reranker), print the numbers behind each finding, write one PNG each.")
    p.add_argument("--out-dir", default="build/rago", help="where the PNGs go (default build/rago)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=findings)

    p = g.add_parser("validate", help="the model's predictions vs measured latencies / throughputs",
                     description="Compare the model's predictions with a measurements JSON (format in "
                                 "host/rago/validate.py) and report the relative errors.")
    p.add_argument("measurements", help="measurements JSON")
    p.add_argument("--schema", help="schema the measured system is described by")
    p.add_argument("--calibration", help="calibration JSON (needed for cpu_scan measurements)")
    p.add_argument("--max-error", type=float, metavar="FRACTION", help="exit 1 if any |error| exceeds this")
    p.set_defaults(func=validate)

    p = g.add_parser("pipeline", help="measure the kNN-LM RALM system on localhost and compare with the model",
                     description="Profile the LLM on one core, calibrate the scan on the datastore's index, start "
                                 "memory nodes and an LLM node on localhost, run waves of C concurrent kNN-LM "
                                 "requests, write the system's schema and the measurements, and report the "
                                 "model's TTFT / TPOT / QPS errors (host/rago/pipeline.py).")
    p.add_argument("--model", default=str(DEMO_MODEL), help=f"LLM checkpoint (default {DEMO_MODEL})")
    p.add_argument("--datastore", required=True, help="kNN datastore folder (anole ralm build knn, or the demo's "
                                                       "build/demo/knn-*)")
    p.add_argument("--workdir", default="build/rago/pipeline", help="profile, calibration, schema, measurements")
    p.add_argument("--concurrency", default="1,2,4,8", help="requests per wave, comma-separated (default 1,2,4,8)")
    p.add_argument("--waves", type=int, default=15, help="waves per C, medians reported (default 15)")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--max-error", type=float, metavar="FRACTION", help="exit 1 if any |error| exceeds this")
    p.set_defaults(func=pipeline)


def _schema(args):
    schema = paradigm(args.schema) if args.schema in FILES and not Path(args.schema).exists() else load_schema(args.schema)
    if getattr(args, "calibration", None):
        schema = apply_calibration(schema, load_calibration(args.calibration), args.calibration)
    return schema


def optimize(args) -> int:
    schema = _schema(args)
    opt = Optimizer(schema)
    front = opt.frontier()
    plan = opt.best(front, args.slo_ttft)
    coeffs = opt.model.coefficients()
    if args.plan_out:
        Path(args.plan_out).write_text(json.dumps(plan.to_dict(), indent=1) + "\n")
    if args.plot:
        plan_figure(front, plan, args.plot, title=schema.name)
    if args.json:
        print(json.dumps({"schema": schema.name, "frontier": [p.to_dict() for p in front], "plan": plan.to_dict(),
                          "coefficients": {k: c.to_dict() for k, c in coeffs.items()}}, indent=1))
        return 0
    print(f"{schema.name}: {len(front)} plans on the Pareto frontier (TTFT vs QPS per cost)")
    print(f"{'TTFT ms':>9} {'QPS':>9} {'cost':>7} {'QPS/cost':>9} {'TPOT ms':>8}  placement / allocation")
    for p in front:
        mark = "*" if p is plan else " "
        print(f"{mark}{p.ttft_s * 1e3:>8.3g} {p.qps:>9,.4g} {p.cost:>7.3g} {p.qps_per_cost:>9.4g} "
              f"{p.tpot_s * 1e3:>8.3g}  {p.placement} "
              + " ".join(f"{g['chips']}x(tp{g['tp']} b{'/'.join(map(str, g['batch'].values()))})" for g in p.groups)
              + f" + {p.retrieval['nodes']} {p.retrieval['kind']} (b{p.retrieval['batch']})")
    print(f"plan: {plan.summary()}")
    print("TTFT breakdown: " + ", ".join(f"{k} {v * 1e3:.3g} ms ({plan.share(k):.0%})" for k, v in plan.breakdown.items()))
    print(f"coordinator: {plan.coordinator_config()}")
    print("coefficients:")
    for k, c in coeffs.items():
        print(f"  {k:<28} {c}")
    if args.plot:
        print(f"wrote {args.plot}")
    return 0


def calibrate(args) -> int:
    cal = run_calibration(args.out, rtl_summary=args.rtl_summary)
    c = cal["cpu_scan"]
    print(f"cpu scan ({c['backend']} backend, 1 thread, m={c['m']}): {c['scan_rate']:.4g} codes/s/core, "
          f"{c['batch_overhead_us']:.3g} us/batch, {c['per_query_us']:.3g} us/query; "
          f"rpc round trip {cal['rpc']['latency_us']:.3g} us, coordinator {cal['rpc']['coordinator_us']:.3g} us/batch"
          + (f"; RTL kernel {cal['fpga_kernel']['efficiency']:.3f} codes/cycle/lane" if "fpga_kernel" in cal else "")
          + f" -> {args.out}")
    return 0


def findings(args) -> int:
    out = {}
    for name, fn in F.ALL.items():
        res = fn(F.paradigm(name))
        png = finding_figure(name, res, Path(args.out_dir) / f"rago_{name}.png")
        out[name] = {k: v for k, v in res.items() if k != "plot"}
        if not args.json:
            print(f"{name}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in out[name].items() if k != "sweep") + f" -> {png}")
    if args.json:
        print(json.dumps(out, indent=1))
    return 0


def validate(args) -> int:
    schema = _schema(args) if args.schema else None
    cal = load_calibration(args.calibration) if args.calibration else None
    checks = run_validation(load_measurements(args.measurements), schema, cal)
    print(report(checks))
    if args.max_error is not None and any(abs(c.error) > args.max_error for c in checks):
        print(f"some errors exceed {args.max_error:.0%}")
        return 1
    return 0


def pipeline(args) -> int:
    for path, what in ((Path(args.model) / "model.safetensors", "--model"),
                       (Path(args.datastore) / "datastore.json", "--datastore")):
        if not path.is_file():
            raise InputError(f"{what}: {path} is missing")
    try:
        conc = tuple(int(c) for c in args.concurrency.split(","))
    except ValueError:
        raise InputError(f"--concurrency must be integers separated by commas, not {args.concurrency!r}") from None
    res = run_pipeline(PipelineConfig(model=args.model, datastore=args.datastore, workdir=args.workdir, concurrency=conc,
                             waves=args.waves, max_tokens=args.max_tokens, prompt_tokens=args.prompt_tokens,
                             nprobe=args.nprobe, k=args.k))
    if args.max_error is not None and any(abs(c.error) > args.max_error for c in res["checks"]):
        print(f"some errors exceed {args.max_error:.0%}")
        return 1
    return 0
