"""SLO attainment, goodput and service gain vs load for every scheduler: in the simulator (the latency
model measured on this machine, and the analytic H100 roofline) and for real on CPU at small scale, with
the simulator's error against the real runs. Prints one summary line of ratios; writes JSON and plots.

    python scripts/bench_slo.py [--latency-model build/llm/latency-cpu.json] [--quick] [--no-real]
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from host.cli.sched import tiny_checkpoint
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.profiler import profile
from llm_node.sched.latency import LatencyModel
from llm_node.sched.registry import NAMES, make_policy
from llm_node.sched.roofline import roofline_model
from llm_node.sim.des import SimConfig, Simulator
from llm_node.sim.metrics import summarize
from llm_node.sim.replay import compare, run_real
from llm_node.sim.workload import SLOScale, chat, mixed

SEEDS = (0, 1, 2)


def workloads(model, kind: str, rate: float, quick: bool):
    n = 20 if quick else 40
    if kind == "chat":  # the PD-multiplexing scenario: multi-turn, growing context, KV reuse
        return [chat(model, rate, n, seed=s, turns=4, prompt_mean=768, output_mean=128) for s in SEEDS]
    return [mixed(model, rate, 3 * n, seed=s) for s in SEEDS]  # Tempo's mix with DAGs


def sweep(model, kind: str, rates, quick: bool) -> dict:
    tbt = SLOScale(model).tbt
    out = {name: [] for name in NAMES}
    for rate in rates:
        wls = workloads(model, kind, rate, quick)
        for name in NAMES:
            agg = {"rate": rate, "goodput": 0.0, "attainment": 0.0, "service_gain": 0.0}
            for wl in wls:
                r = Simulator(model, make_policy(name, model, tbt=tbt)).run(wl)
                s = summarize(r.records, r.dags, r.span)
                for k in ("goodput", "attainment", "service_gain"):
                    agg[k] += s[k] / len(wls)
            out[name].append(agg)
            logging.info("%s %s rate %.2f: %s", model.device[:24], kind, rate, agg)
    return out


def capacity(model) -> float:
    """A rough request rate the whole device sustains on the chat workload (to place the sweep)."""
    tokens = 4 * (768 + 128)
    per_req = model.prefill_chunk(1.0, 768, 1200) * 4 + 4 * 128 * model.decode_time(1.0, 16, 16 * 2000) / 16
    return 1.0 / per_req * (768 + 128) * 4 / tokens


def real_cpu(out: Path, quick: bool) -> dict:
    """Profile the tiny CPU model now (the machine is shared: an old profile drifts), then run every
    scheduler for real on it and the simulator on the same requests with the fresh model."""

    ckpt = tiny_checkpoint()
    model = profile(LLMEngine(EngineConfig(ckpt, num_kv_blocks=2048, block_size=16)))
    model.save(out / "latency-cpu-now.json")
    scale = SLOScale(model)
    n = 12 if quick else 24
    per_req = model.prefill_chunk(1.0, 128) + 32 * model.decode_time(1.0, 4, 4 * 160) / 4
    res = {}
    for load in ((1.0,) if quick else (0.6, 1.2, 2.5)):
        wl = chat(model, load / per_req, n, seed=7, prompt_mean=128, output_mean=32, max_len=1024, scale=scale)
        for name in NAMES:
            eng = LLMEngine(EngineConfig(ckpt, num_kv_blocks=512, block_size=16))
            seqs, steps = run_real(eng, make_policy(name, model, tbt=scale.tbt), wl)
            recs = [type("R", (), {"seq": q, "req": r, "dag_id": None}) for q, r in zip(seqs, wl)]
            span = max(r.arrival for r in wl) - min(r.arrival for r in wl)
            real = summarize(recs, {}, span)
            sim = Simulator(model, make_policy(name, model, tbt=scale.tbt), SimConfig(block_size=16)).run(wl)
            simsum = summarize(sim.records, sim.dags, sim.span)
            res.setdefault(name, []).append({"load": load, "rate": load / per_req, "real": real, "sim": simsum,
                                             "steps": steps, "error": compare([r.seq for r in sim.records], seqs)})
            logging.info("real %s load %.1f: goodput %.3f (sim %.3f), err %s", name, load, real["goodput"],
                         simsum["goodput"], res[name][-1]["error"])
    return res


def plot(results: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, k) for m in results["sim"] for k in results["sim"][m]]
    fig, axes = plt.subplots(2, len(panels), figsize=(4.5 * len(panels), 7), squeeze=False)
    for j, (m, k) in enumerate(panels):
        for name, rows in results["sim"][m][k].items():
            rates = [r["rate"] for r in rows]
            axes[0][j].plot(rates, [r["goodput" if k == "chat" else "service_gain"] for r in rows], "o-", label=name)
            axes[1][j].plot(rates, [r["attainment"] for r in rows], "o-", label=name)
        axes[0][j].set_title(f"{m}: {k}", fontsize=9)
        axes[0][j].set_ylabel("goodput (req/s)" if k == "chat" else "service gain")
        axes[1][j].set_ylabel("SLO attainment")
        axes[1][j].set_xlabel("load (requests/s)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def ratio(rows: dict, key: str, a: str, b: str, i: int) -> float:
    return rows[a][i][key] / rows[b][i][key] if rows[b][i][key] > 0 else float("inf")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-model", default="build/llm/latency-cpu.json", help="measured model (anole llm profile)")
    ap.add_argument("--out", default="build/bench/slo", help="folder for slo.json and slo.png")
    ap.add_argument("--quick", action="store_true", help="fewer requests and loads")
    ap.add_argument("--no-real", action="store_true", help="skip the real CPU runs")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = {"gpu-roofline": roofline_model()}
    if Path(args.latency_model).is_file():
        measured = LatencyModel.load(args.latency_model)
        models[f"{measured.backend}-measured"] = measured
    results = {"sim": {}, "models": {k: m.to_dict() for k, m in models.items()}}
    for key, m in models.items():
        cap = capacity(m)
        loads = (1.0, 2.0) if args.quick else (1.0, 1.5, 2.0, 2.5)
        # the mix also past overload, where choosing whom to serve on time (Tempo's service gain) matters
        mix_loads = (1.0, 4.0) if args.quick else (1.0, 2.5, 4.0, 6.0)
        chat_rates, mix_rates = [cap * f for f in loads], [3 * cap * f for f in mix_loads]
        results["sim"][key] = {"chat": sweep(m, "chat", chat_rates, args.quick),
                               "mixed": sweep(m, "mixed", mix_rates, args.quick)}
    if not args.no_real:
        results["real_cpu"] = real_cpu(out, args.quick)
    (out / "slo.json").write_text(json.dumps(results, indent=1, default=str))
    plot(results, out / "slo.png")
    parts = []
    for key in results["sim"]:
        c, x = results["sim"][key]["chat"], results["sim"][key]["mixed"]
        i = len(c["fcfs"]) - 1
        parts.append(f"sim[{key}] chat@{c['fcfs'][i]['rate']:.2f}/s pd_mux goodput/fcfs "
                     f"{ratio(c, 'goodput', 'pd_mux', 'fcfs', i):.2f}, /chunked "
                     f"{ratio(c, 'goodput', 'pd_mux', 'chunked_prefill', i):.2f}; mixed@{x['fcfs'][i]['rate']:.2f}/s "
                     + "; ".join(f"{t} gain/" + ",".join(f"{b} {ratio(x, 'service_gain', t, b, i):.3f}"
                                                         for b in ("fcfs", "chunked_prefill", "pd_disagg", "pd_mux"))
                                 for t in ("tempo", "tempo_mux")))
    if "real_cpu" in results:
        r = results["real_cpu"]
        i = len(r["fcfs"]) - 1
        g = {k: [{"goodput": v[i]["real"]["goodput"]}] for k, v in r.items()}
        parts.append(f"real[cpu] load {r['fcfs'][i]['load']}: pd_mux goodput/fcfs "
                     f"{ratio(g, 'goodput', 'pd_mux', 'fcfs', 0):.2f}, "
                     f"/chunked {ratio(g, 'goodput', 'pd_mux', 'chunked_prefill', 0):.2f}; sim TTLT error "
                     + ", ".join(f"{k} {v[i]['error']['ttlt_rel_err']:.0%}" for k, v in r.items()))
    print(" | ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
