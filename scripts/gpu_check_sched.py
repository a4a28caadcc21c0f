"""The scheduling check for a session lent a GPU (issue 9), in one run of about 7 minutes on an H100:

  status   torch / CUDA / Green Context status, and whether two Green Context partitions really hold
           disjoint SMs (a matmul loop on each alone, then on both at once)
  tiny     `anole llm profile --device cuda` on the tiny GPT-2 (made on the spot, float32)
  graphs   CUDA-graph steps (decode, prefill) against eager ones: greedy tokens (tiny GPT-2 float32, the
           Llama bf16), step latencies on the whole GPU and inside a Green Context partition, tokens/s
  llama    the same on a random ~350 M-parameter Llama (made on the spot, bfloat16)
  mux      real runs through MuxEngine on the Llama: FCFS, chunked prefill, PD-mux on Green Contexts (then
           tempo_mux, tempo, pd_disagg while time lasts), the simulator's error on the same requests, and
           PD-mux's greedy tokens against the plain engine (tiny model, float32, a split forced)
  sweep    scripts/bench_slo.py's simulator sweep with the freshly measured CUDA model

Writes under $OUT (default build/gpu): summary.json, log.txt (every step's output), latency-cuda-tiny.json,
latency-cuda-llama.json, mux.json, slo/slo.json, slo/slo.png. Each step runs in its own process with a
time limit cut to what is left of --budget-s; a failed step is recorded and the others still run.
Without CUDA it exits 2 at once, naming what is missing. `--dry-run` runs the same steps on the CPU with
a small Llama and quick grids (a plumbing check before spending device time; its numbers mean nothing).

    python3 scripts/gpu_check_sched.py [--budget-s 420] [--out DIR] [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from host.cli import main as anole
from host.cli.sched import tiny_checkpoint
from llm_node.sched.latency import LatencyModel, Split
from llm_node.sched.registry import make_policy
from llm_node.sim.metrics import summarize
from llm_node.sim.workload import SLOScale, chat

ROOT = Path(__file__).resolve().parents[1]
LLAMA = dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
             num_key_value_heads=8, vocab_size=32000, max_position_embeddings=4096, rope_theta=500000.0,
             bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
DRY = os.environ.get("ANOLE_GPU_CHECK_DRY") == "1"
DEVICE = "cpu" if DRY else "cuda"
if DRY:
    LLAMA.update(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048)
STEPS = {"status": 60, "tiny": 90, "graphs": 90, "llama": 150, "mux": 120, "sweep": 150}  # cap, seconds
RESERVE = {"status": 0, "tiny": 0, "graphs": 0, "llama": 0, "mux": 60, "sweep": 45}      # kept for later steps


def missing_cuda() -> str | None:
    """What stops this check from running on a GPU, or None."""
    try:
        import torch
    except ImportError:
        return f"PyTorch is not installed for {sys.executable}"
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is built without CUDA (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU: torch.cuda.is_available() "
                f"is False (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return None


# ---- steps (each runs in its own process: `--step NAME`; its last stdout line is `RESULT {json}`) ----

def step_status(out: Path, work: Path, limit_s: float) -> dict:
    import torch

    if DRY:
        return {"dry_run": True, "torch": torch.__version__}

    from llm_node.partition import Worker, device_units, green_contexts_status, make_partitions  # lazy: torch

    sms = device_units("cuda")
    ok, why = green_contexts_status("cuda")
    res = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": torch.cuda.get_device_name(0),
           "sms": sms, "green_contexts": ok, "green_contexts_why": why}
    try:
        from cuda.bindings import driver
        res["driver"] = driver.cuDriverGetVersion()[1]
    except ImportError as e:
        res["driver"] = f"cuda.bindings missing: {e}"
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
    ref = (a @ a).float().sum().item()

    def loop(n=200):
        torch.cuda.current_stream().synchronize()
        t = time.perf_counter()
        for _ in range(n):
            c = a @ a
        torch.cuda.current_stream().synchronize()
        return time.perf_counter() - t, c.float().sum().item()

    loop(20)
    res["whole_s"] = loop()[0]
    p, d = make_partitions("cuda", max(8, sms // 2 // 8 * 8), sms)
    res["partition_sms"] = [p.units, d.units]
    workers = [Worker(p, "prefill"), Worker(d, "decode")]
    try:
        for w in workers:
            w.submit(lambda: loop(20)).result()
        alone = [w.submit(loop).result() for w in workers]
        t = time.perf_counter()
        both = [f.result() for f in [w.submit(loop) for w in workers]]
        res["both_wall_s"] = time.perf_counter() - t
    finally:
        for w in workers:
            w.close()
    res["alone_s"] = [s for s, _ in alone]
    res["same_result"] = all(abs(v - ref) <= 1e-3 * abs(ref) for _, v in alone + both)
    # disjoint SMs: each partition alone is slower than the whole device, and both at once take about as
    # long as the slower one alone (overlapping SMs would take about the sum)
    res["restricts_sms"] = min(res["alone_s"]) > 1.3 * res["whole_s"]
    res["isolated"] = res["both_wall_s"] < 1.25 * max(res["alone_s"])
    return res


def llama_checkpoint(folder: Path) -> Path:
    """A randomly initialised Llama of ~350 M parameters (bfloat16), made on the GPU and saved once."""
    if not (folder / "config.json").is_file():
        import torch
        import transformers

        torch.manual_seed(0)
        with torch.device(DEVICE):
            model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA))
        model.to(torch.bfloat16).save_pretrained(folder)
    return folder


def step_profile(kind: str, out: Path, work: Path, limit_s: float) -> dict:
    t = time.perf_counter()
    ckpt, dtype = checkpoint(kind, work)
    made_s = time.perf_counter() - t
    path = out / f"latency-cuda-{kind}.json"
    rc = anole(["llm", "profile", "--device", DEVICE, "--dtype", dtype, "--model", str(ckpt), "--out", str(path),
                *(["--quick"] if DRY else [])])
    if rc != 0:
        raise RuntimeError(f"anole llm profile exited {rc}")
    m = json.loads(path.read_text())
    return {"checkpoint_s": made_s, "model": str(path), "partitioning": m.get("partitioning"),
            "splits": [s["prefill_share"] for s in m["splits"]],
            "units": [[s["prefill_units"], s["decode_units"]] for s in m["splits"]],
            "fit": m.get("fit"), "pad": m["mixed"]["pad"], "kv_transfer_s_per_token": m["kv_transfer_s_per_token"]}


def graph_sets(engine) -> list:
    return [g for g in (engine.runner.graphs, engine.runner.prefill_graphs) if g is not None]


def replays(engine) -> dict:
    """Graph replays so far, per kind (decode, prefill)."""
    return {g.kind: g.replays for g in graph_sets(engine)}


def step_graphs(out: Path, work: Path, limit_s: float) -> dict:
    """Eager steps against CUDA-graph ones (decode and prefill), in the same process."""
    import torch

    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch
    from llm_node.engine.sequence import SamplingParams  # lazy: torch
    from llm_node.partition import Worker, device_units, make_partitions  # lazy: torch
    from llm_node.profiler import Bench, decode_shapes  # lazy: torch

    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 2000, (n,), generator=g).tolist() for n in (200, 7, 90, 333, 15, 64, 128, 3)]
    params = SamplingParams(temperature=0, max_tokens=32, ignore_eos=True)
    res: dict = {}
    tiny = tiny_checkpoint(work / "tiny-gpt2")
    toks = {}
    for graphs in (False, True):
        eng = LLMEngine(EngineConfig(tiny, device=DEVICE, num_kv_blocks=512, cuda_graphs=graphs))
        toks[graphs] = [s.completion_ids for s in eng.generate(prompts, params)]
        if graphs:
            res["tiny_replays"] = replays(eng)
    res["tiny_tokens_equal"] = [a == b for a, b in zip(toks[False], toks[True])].count(True)
    res["requests"] = len(prompts)
    ckpt, dtype = checkpoint("llama", work)
    units = device_units(DEVICE)
    ctx, sizes, many = (64, (1, 8), 4) if DRY else (512, (1, 8, 32, 64), 32)
    many = [torch.randint(3, 2000, (128,), generator=g).tolist() for _ in range(many)]
    for graphs in (False, True):
        name = "graphs" if graphs else "eager"
        t = time.perf_counter()
        eng = LLMEngine(EngineConfig(ckpt, device=DEVICE, dtype=dtype, num_kv_blocks=4096, block_size=16,
                                     cuda_graphs=graphs))
        r = res[name] = {"engine_s": time.perf_counter() - t}
        if graphs:
            r["graphs"] = {g.kind: len(g.graphs) for g in graph_sets(eng)}
        bench = Bench(eng)
        for b in sizes:
            r[f"decode_{b}x{ctx}_ms"] = 1e3 * bench.median(decode_shapes(b, ctx), 10)
        r[f"prefill_{ctx}_ms"] = 1e3 * bench.median([(ctx, 0)], 5)
        pre, dec = make_partitions(DEVICE, max(1, min(units - 1, units * 72 // 132 // 8 * 8 or units // 2)), units)
        w = Worker(dec, "decode")
        try:
            r[f"decode_8x{ctx}_in_partition_ms"] = 1e3 * w.submit(lambda: bench.median(decode_shapes(8, ctx), 10),
                                                                   dec).result(timeout=60)
        finally:
            w.close()
        r["partition_units"] = [pre.units, dec.units if dec is not None else None]
        toks[name] = [s.completion_ids for s in eng.generate(prompts, params)]
        t = time.perf_counter()
        done = eng.generate(many, SamplingParams(temperature=0, max_tokens=64, ignore_eos=True))
        r["generate_tok_s"] = sum(len(s.completion_ids) for s in done) / (time.perf_counter() - t)
        if graphs:
            r["replays"] = replays(eng)
            r["failed_streams"] = {g.kind: len(g.failed) for g in graph_sets(eng)}
        del eng, bench
        if not DRY:
            torch.cuda.empty_cache()
    res["llama_tokens_equal"] = [a == b for a, b in zip(toks["eager"], toks["graphs"])].count(True)
    res["speedup"] = {k: res["eager"][k] / res["graphs"][k] for k in res["eager"] if k.endswith("_ms")}
    res["speedup"]["generate"] = res["graphs"]["generate_tok_s"] / res["eager"]["generate_tok_s"]
    return res


def forced_split_model(units: int):
    """A latency model under which PD-mux always splits (as tests/llm_node/sched/test_mux_engine.py)."""

    pre, dec = {"c0": 1e-3, "tokens": 1e-5, "attn": 1e-8, "context": 0.0}, {"c0": 1e-3, "batch": 1e-4, "context": 1e-7}
    return LatencyModel("forced split", Split(1.0, pre, dec),
                        [Split(0.5, {**pre, "tokens": 1.2e-5, "attn": 1.2e-8}, dec, units // 2, units - units // 2)],
                        1e-7, DEVICE, units)


def tokens_check(work: Path) -> dict:
    """PD-mux on two Green Context partitions gives the plain engine's greedy tokens (tiny GPT-2, float32)."""
    import torch

    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch
    from llm_node.engine.sequence import SamplingParams  # lazy: torch
    from llm_node.partition import device_units  # lazy: torch
    from llm_node.sched.mux_engine import MuxEngine  # lazy: torch

    cfg = EngineConfig(tiny_checkpoint(work / "tiny-gpt2"), device=DEVICE, block_size=16, num_kv_blocks=512)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 2000, (n,), generator=g).tolist() for n in (200, 7, 90, 333, 15, 64, 128, 3)]
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    plain = [s.completion_ids for s in LLMEngine(cfg).generate(prompts, params)]
    eng = LLMEngine(cfg)
    mux = MuxEngine(eng, make_policy("pd_mux", forced_split_model(device_units(DEVICE)), tbt=0.05))
    try:
        seqs = mux.run([(0.003 * i, p, params, None) for i, p in enumerate(prompts)])
    finally:
        mux.close()
    same = [s.completion_ids == want for s, want in zip(seqs, plain)]
    return {"requests": len(same), "equal": sum(same), "steps": mux.steps,
            "blocks_back": eng.block_manager.num_free_blocks == cfg.num_kv_blocks}


def checkpoint(kind: str, work: Path) -> tuple[Path, str]:
    """(folder, dtype) of the `tiny` GPT-2 or the `llama`, made on the spot if missing."""

    if kind == "tiny":
        return tiny_checkpoint(work / "tiny-gpt2"), "float32"
    return llama_checkpoint(work / "llama-350m"), "float32" if DRY else "bfloat16"


def step_mux(kind: str, out: Path, work: Path, limit_s: float, n: int = 12 if DRY else 48, load: float = 1.0) -> dict:
    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch
    from llm_node.engine.sequence import SamplingParams  # lazy: torch
    from llm_node.sim.des import Record, SimConfig, Simulator  # lazy: torch
    from llm_node.sim.replay import compare, run_real  # lazy: torch

    t0 = time.perf_counter()
    try:
        res = {"tokens": tokens_check(work)}
    except Exception as e:  # noqa: BLE001 - recorded; the timed runs still go on
        logging.exception("token check failed")
        res = {"tokens": {"error": repr(e)}}
    model = LatencyModel.load(out / f"latency-cuda-{kind}.json")
    scale = SLOScale(model)
    per_req = model.prefill_chunk(1.0, 512) + 64 * model.decode_time(1.0, 16, 16 * 600) / 16
    wl = chat(model, load / per_req, n, seed=7, prompt_mean=512, output_mean=64, max_len=2048, scale=scale)
    span = max(r.arrival for r in wl) - min(r.arrival for r in wl)
    res.update(model=kind, load=load, rate=load / per_req, requests=n, tbt_slo=scale.tbt, runs={})
    # one engine for every run; no prefix cache, so a run cannot reuse the previous run's prompts
    ckpt, dtype = checkpoint(kind, work)
    eng = LLMEngine(EngineConfig(ckpt, device=DEVICE, dtype=dtype, num_kv_blocks=4096, block_size=16,
                                 enable_prefix_caching=False))
    eng.generate([[5] * 512, [7] * 64, [9] * 200, [11] * 16], SamplingParams(temperature=0, max_tokens=8))  # warm-up
    busy, run_batch = [0.0], eng.run_batch

    def timed_run_batch(batch):  # time inside the lanes' compute (all lanes together)
        t = time.perf_counter()
        try:
            return run_batch(batch)
        finally:
            busy[0] += time.perf_counter() - t
    eng.run_batch = timed_run_batch
    # every scheduler once, then FCFS and PD-mux again (how much a rerun moves) while time lasts
    for run in ("fcfs", "pd_mux", "chunked_prefill", "tempo_mux", "tempo", "pd_disagg", "fcfs#2", "pd_mux#2"):
        name = run.split("#")[0]
        if time.perf_counter() - t0 > 0.8 * limit_s:
            res["runs"][run] = "skipped: out of time"
            continue
        policy, t = make_policy(name, model, tbt=scale.tbt), time.perf_counter()
        busy[0], before = 0.0, replays(eng)
        try:
            seqs, steps = run_real(eng, policy, wl)
        except Exception as e:  # noqa: BLE001 - recorded; the other schedulers still run
            logging.exception("real run of %s failed", name)
            res["runs"][run] = f"failed: {e!r}"
            for seq_id in list(eng.seqs):  # what the failed run left queued
                eng.abort(seq_id)
            continue
        wall = time.perf_counter() - t
        real = summarize([Record(q, r) for q, r in zip(seqs, wl)], {}, span)
        sim = Simulator(model, make_policy(name, model, tbt=scale.tbt), SimConfig(block_size=16)).run(wl)
        res["runs"][run] = {"wall_s": wall, "steps": steps, "splits": getattr(policy, "splits_chosen", None),
                             "run_batch_s": busy[0],
                             "graph_replays": {k: v - before.get(k, 0) for k, v in replays(eng).items()},
                             "blocks_back": eng.block_manager.num_free_blocks == 4096,
                             "real": real, "sim": summarize(sim.records, sim.dags, sim.span),
                             "error": compare([r.seq for r in sim.records], seqs)}
        (out / "mux.json").write_text(json.dumps(res, indent=1, default=str))  # kept if the step is cut short
    g = {k: v["real"]["goodput"] for k, v in res["runs"].items() if isinstance(v, dict)}
    ratio = lambda a, b: g[a] / g[b] if g.get(b) else None  # noqa: E731
    return {"tokens": res["tokens"], "goodput": g, "pd_mux/fcfs": ratio("pd_mux", "fcfs"),
            "pd_mux/chunked": ratio("pd_mux", "chunked_prefill"),
            "ttlt_err": {k: v["error"]["ttlt_rel_err"] for k, v in res["runs"].items() if isinstance(v, dict)}}


# ---- the driver ----

def run_step(argv: list[str], limit_s: float, log) -> tuple[int | None, str]:
    """Run a step's process (its own session, killed with its children at the limit); (rc or None, stdout)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        text, rc = proc.communicate(timeout=limit_s)[0], proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, rc = proc.communicate()[0], None
    log.write(text)
    log.flush()
    return rc, text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or "build/gpu",
                    help="output folder (default $OUT, else build/gpu)")
    ap.add_argument("--work", default="build/gpu-work", help="checkpoints made on the spot (default build/gpu-work)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for all steps (default 420)")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, small (plumbing check)")
    ap.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps to run (default all: {','.join(STEPS)})")
    ap.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    ap.add_argument("--limit-s", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--kind", default="llama", help=argparse.SUPPRESS)
    args = ap.parse_args()
    out, work = Path(args.out).resolve(), Path(args.work).resolve()
    unknown = set(args.only.split(",")) - set(STEPS)
    if unknown:
        ap.error(f"--only: unknown step(s) {', '.join(sorted(unknown))}; steps: {', '.join(STEPS)}")
    if args.step:
        sys.path.insert(0, str(ROOT))
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        fn = {"status": step_status, "mux": lambda *a: step_mux(args.kind, *a), "graphs": step_graphs,
              "tiny": lambda *a: step_profile("tiny", *a), "llama": lambda *a: step_profile("llama", *a)}[args.step]
        print("RESULT " + json.dumps(fn(out, work, args.limit_s), default=str))
        return 0
    if args.dry_run and not DRY:
        os.environ["ANOLE_GPU_CHECK_DRY"] = "1"  # the step processes inherit it
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    why = None if DRY else missing_cuda()
    out.mkdir(parents=True, exist_ok=True)
    summary = {"ok": False, "budget_s": args.budget_s, "steps": {}}
    if why is not None:
        summary["error"] = f"needs CUDA: {why}"
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"gpu_check_sched: needs CUDA: {why}", file=sys.stderr)
        return 2
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    with open(out / "log.txt", "w") as log:
        chosen = [n for n in STEPS if n in args.only.split(",")]
        for i, name in enumerate(chosen):
            left = deadline - time.monotonic() - sum(RESERVE[n] for n in chosen[i + 1:])
            entry = summary["steps"][name] = run_one(name, min(STEPS[name], left), summary, out, work, log)
            print(f"[{name}] {entry['status']} ({entry.get('seconds', 0)} s)", flush=True)
            (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    summary["ok"] = all(s["status"] == "ok" for s in summary["steps"].values())
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(json.dumps(summary, default=str))
    return 0 if summary["ok"] else 1


def run_one(name: str, limit: float, summary: dict, out: Path, work: Path, log) -> dict:
    """Run step `name` within `limit` seconds; its summary entry (status, seconds, result)."""
    entry = {"limit_s": round(limit, 1)}
    # mux and sweep use the Llama's latency model, or the tiny model's if the Llama's step failed
    kind = next((k for k in ("llama", "tiny") if summary["steps"].get(k, {}).get("status") == "ok"), None)
    if name in ("mux", "sweep"):
        if kind is None:
            return {**entry, "status": "skipped: no CUDA latency model (neither step llama nor tiny finished)"}
        entry["model"] = kind
    if limit < 10:
        return {**entry, "status": "skipped: out of time"}
    if name == "sweep":
        argv = [sys.executable, str(ROOT / "scripts/bench_slo.py"), "--no-real", "--out", str(out / "slo"),
                "--latency-model", str(out / f"latency-cuda-{kind}.json"), *(["--quick"] if limit < 120 or DRY else [])]
    else:
        argv = [sys.executable, __file__, "--step", name, "--out", str(out), "--work", str(work),
                "--limit-s", str(limit), "--kind", str(kind)]
    log.write(f"\n===== {name} (limit {limit:.0f} s) =====\n")
    t = time.monotonic()
    rc, text = run_step(argv, limit, log)
    entry["seconds"] = round(time.monotonic() - t, 1)
    last = (text.strip().splitlines() or [""])[-1]
    if rc is None:
        entry["status"] = f"timed out after {limit:.0f} s"
    elif rc != 0:
        entry["status"] = f"failed (exit {rc}): {last[:300]}"
    else:
        entry["status"] = "ok"
        entry["result"] = json.loads(last[7:]) if last.startswith("RESULT ") else {"summary": last}
    return entry


if __name__ == "__main__":
    raise SystemExit(main())
