"""`anole llm profile`: fit the latency model the SLO-aware schedulers, the simulator and RAGO read."""
from __future__ import annotations

import json
from pathlib import Path

from host.cli.common import group
from llm_node.sched.latency import LatencyModel
from llm_node.sched.registry import NAMES, NEEDS_MODEL, make_policy

TINY = dict(n_embd=256, n_layer=4, n_head=4, vocab_size=2048, n_positions=2048)


def register(sub, groups):
    llm = group(sub, groups, "llm", "the LLM node's tools: train the demo model, profile latency")
    p = llm.add_parser("profile", help="measure prefill/decode latency per partition split, fit the model",
                       description="Measure prefill (tokens, context) and decode (batch, context) step latency on "
                                   "the whole device and on every partition split (CUDA: Green Context SM "
                                   "counts; CPU: the analogue, a core split between a prefill and a decode "
                                   "thread), fit the latency model and save it as JSON (docs/latency-model.md).")
    p.add_argument("--model", help="checkpoint folder (default: a tiny random GPT-2 made under build/llm/)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16 (default float32)")
    p.add_argument("--out", default="build/llm/latency.json", help="output JSON (default build/llm/latency.json)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per grid point, median kept (default 3)")
    p.add_argument("--quick", action="store_true", help="a small grid (smoke test)")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="on CUDA, profile eager decode steps (default: CUDA graphs, as the engine serves)")
    p.set_defaults(func=profile_cmd)


def tiny_checkpoint(folder: str | Path = "build/llm/tiny-gpt2") -> Path:
    """A randomly initialised GPT-2 of ~3 M parameters saved as a Hugging Face folder (made once)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        import torch
        import transformers

        torch.manual_seed(0)
        transformers.GPT2LMHeadModel(transformers.GPT2Config(**TINY, bos_token_id=0, eos_token_id=0)
                                     ).save_pretrained(folder)
    return folder


def profile_cmd(args) -> int:
    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.engine.llm_engine import LLMEngine  # lazy: torch
    from llm_node.profiler import ProfileConfig, profile  # lazy: torch

    model = Path(args.model) if args.model else tiny_checkpoint()
    engine = LLMEngine(EngineConfig(model, device=args.device, dtype=args.dtype, num_kv_blocks=2048, block_size=16,
                                    cuda_graphs=args.cuda_graphs))
    cfg = ProfileConfig(repeats=args.repeats)
    if args.quick:
        cfg = ProfileConfig(prefill_grid=((16, 0), (64, 0), (64, 64), (16, 128)),
                            decode_grid=((1, 32), (4, 32), (4, 128)), repeats=1, background_decode=(4, 64),
                            background_prefill=(64, 0), mixed_grid=(((64, 0), (4, 32)), ((16, 64), (2, 64))))
    lm = profile(engine, cfg)
    out = lm.save(args.out)
    print(json.dumps({"out": str(out), "device": lm.device, "splits": lm.shares, "fit": lm.extra.get("fit")}))
    return 0


def add_scheduler_args(p) -> None:
    """`--scheduler`, `--latency-model`, `--tbt` for `anole serve llm-node` / `anole generate` (hook for
    host/cli/llm.py: call this in `_engine_args`, then pass `policy_from_args(args)` to the engine)."""

    p.add_argument("--scheduler", default="fcfs", choices=NAMES, help="scheduling policy (default fcfs)")
    p.add_argument("--latency-model", default="build/llm/latency.json",
                   help="latency model from `anole llm profile` (pd_mux, pd_disagg, tempo, chunked budget)")
    p.add_argument("--tbt", type=float, default=0.1, help="default TBT target in seconds (default 0.1)")


def policy_from_args(args):
    """The policy object `--scheduler` names; LanePolicy ones (pd_mux, pd_disagg, tempo_mux) need MuxEngine."""

    path = Path(args.latency_model)
    model = LatencyModel.load(path) if args.scheduler in NEEDS_MODEL or path.is_file() else None
    return make_policy(args.scheduler, model, tbt=args.tbt)
