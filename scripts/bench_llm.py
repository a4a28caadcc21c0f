"""Benchmark the LLM engine: 16 requests through continuous batching vs `transformers` generate one at a time.

Same model, same prompts, same run, same thread count (design.md section 7, target >= 3x tokens/s). Greedy
decoding with a fixed number of new tokens, so both sides produce the same tokens (checked). Prints TTFT/TBT
percentiles of the engine and one summary line:

    bench_llm: anole 5.1x HF generate (anole 1520 tok/s at batch 16, HF 298 tok/s one at a time, ...)
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llm_node.config import EngineConfig  # noqa: E402
from llm_node.engine.llm_engine import LLMEngine  # noqa: E402
from llm_node.engine.sequence import SamplingParams  # noqa: E402
from llm_node.defaults import DEMO_MODEL  # noqa: E402

log = logging.getLogger("bench_llm")
DEMO = DEMO_MODEL


def random_gpt2(folder: Path) -> Path:
    """A randomly initialised GPT-2 of the demo model's shape (used when no trained model is there)."""
    import transformers
    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        cfg = transformers.GPT2Config(n_embd=160, n_layer=4, n_head=4, n_positions=256, vocab_size=4096)
        transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(folder)
    return folder


def percentiles(xs) -> str:
    return "/".join(f"{np.percentile(xs, q) * 1e3:.1f}" for q in (50, 90, 99)) + " ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help=f"checkpoint folder (default {DEMO} if trained, else a random GPT-2)")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=32, help="mean prompt length (lengths vary +-50%%)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    import transformers

    folder = Path(args.model) if args.model else (DEMO if (DEMO / "config.json").is_file()
                                                  else random_gpt2(Path("build/llm/bench-gpt2-random")))
    engine = LLMEngine(EngineConfig(folder, device=args.device, num_kv_blocks=1024))
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).to(args.device).eval()
    rng = np.random.default_rng(0)
    vocab = engine.model_config.vocab_size
    lens = rng.integers(args.prompt_len // 2, args.prompt_len * 3 // 2 + 1, args.requests)
    prompts = [rng.integers(0, vocab, n).tolist() for n in lens]
    params = SamplingParams(temperature=0, max_tokens=args.new_tokens, ignore_eos=True)
    n = args.new_tokens

    def hf_generate(p):
        x = torch.tensor([p], device=args.device)
        with torch.no_grad():
            out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                              do_sample=False, pad_token_id=0)
        return out[0, len(p):].tolist()

    warm = [rng.integers(0, vocab, args.prompt_len).tolist() for _ in range(2)]  # no prefix shared with prompts
    engine.generate(warm, params)
    hf_generate(warm[0])

    t0 = time.perf_counter()
    seqs = engine.generate(prompts, params)
    anole_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [hf_generate(p) for p in prompts]
    hf_s = time.perf_counter() - t0

    total = args.requests * n
    anole_tps, hf_tps = total / anole_s, total / hf_s
    same = sum(s.completion_ids == r for s, r in zip(seqs, ref))
    ttft = [s.timings()["ttft"] for s in seqs]
    tbt = [x for s in seqs for x in s.timings()["tbt"]]
    print(f"model {folder} ({engine.model_config.architecture}, {sum(p.numel() for p in hf.parameters()) / 1e6:.1f} M "
          f"params), {args.requests} requests, prompts {lens.min()}-{lens.max()} tokens, {n} new tokens each")
    print(f"anole: {anole_tps:.0f} tok/s, TTFT p50/p90/p99 {percentiles(ttft)}, TBT p50/p90/p99 {percentiles(tbt)}")
    print(f"HF generate one at a time: {hf_tps:.0f} tok/s; identical greedy outputs {same}/{args.requests}")
    print(f"bench_llm: anole {anole_tps / hf_tps:.2f}x HF generate (anole {anole_tps:.0f} tok/s at batch "
          f"{args.requests}, HF {hf_tps:.0f} tok/s one at a time, device={args.device}, threads={args.threads})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
