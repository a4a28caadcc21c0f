"""`anole generate`, `anole serve llm-node`, `anole llm train`: the LLM node's commands."""
from __future__ import annotations

import json

from host.cli.api import generate_remote
from host.cli.common import group
from host.cli.sched import add_scheduler_args, policy_from_args
from host.net.lifecycle import check_drain_timeout
from host.spec.errors import InputError
from llm_node.errors import RequestError
from llm_node.tokenizer import Tokenizer
from llm_node.defaults import DEMO_MODEL


def register(sub, groups):
    p = sub.add_parser("generate", help="one generation on a local checkpoint or through a running server",
                       description="Generate from a local Hugging Face checkpoint folder (GPT-2, Llama, Qwen2) "
                                   "with the anole engine, or through a running LLM node (--server H:P) or API "
                                   "(--server http://H:P, streamed); --json prints ids, text and timings.")
    _engine_args(p, model_required=False)
    p.add_argument("--server", help="H:P of an `anole serve llm-node` (H:P,H:P,...: several of one model, with "
                                    "failover), or http://H:P of an `anole serve api`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text (needs the checkpoint's tokenizer.json)")
    src.add_argument("--prompt-ids", help="prompt token ids, e.g. 1,2,3")
    p.add_argument("--max-new-tokens", type=int, default=32, help="tokens to generate at most (default 32)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (same as --temperature 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (default 0: all)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--ignore-eos", action="store_true", help="do not stop at the end-of-sequence token")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=generate)

    serve = group(sub, groups, "serve", "run a server: memory-node, llm-node, coordinator")
    p = serve.add_parser("llm-node", help="serve generation from a checkpoint over TCP",
                         description="Serve a local checkpoint over the anole framed TCP transport: streamed "
                                     "generation (tokens as produced), scoring, info (llm_node/server.py).")
    _engine_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7100, help="port (default 7100, 0 = any free port)")
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="on SIGTERM/SIGINT, finish generations in flight for at most this many seconds (default 30)")
    add_scheduler_args(p)
    p.set_defaults(func=serve_llm_node)

    llm = group(sub, groups, "llm", "the LLM node's tools: train the demo model")
    p = llm.add_parser("train", help="train the small GPT-2 demo model on a local text corpus",
                       description="Train a byte-level BPE tokenizer and a small GPT-2 on local text files and save "
                                   "a Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer).")
    p.add_argument("--corpus", nargs="*", default=None,
                   help="text files or folders (default: the Python standard library's sources)")
    p.add_argument("--out", default=str(DEMO_MODEL), help=f"checkpoint folder (default {DEMO_MODEL})")
    p.add_argument("--minutes", type=float, default=4.0, help="training time budget, after tokenizer training (default 4)")
    p.add_argument("--steps", type=int, default=0, help="stop after this many steps (default 0: time only)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--n-embd", type=int, default=160)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--context", type=int, default=128, help="training sequence length = n_positions (default 128)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    p.add_argument("--max-corpus-mb", type=float, default=3.0, help="text read at most (default 3 MB)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain even if --out already holds a trained model")
    p.set_defaults(func=train)


def _engine_args(p, model_required: bool = True):
    p.add_argument("--model", required=model_required,
                   help="checkpoint folder (config.json, *.safetensors, tokenizer.json)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--dtype", default="float32", help="float32 | float16 | bfloat16 (default float32)")
    p.add_argument("--kv-blocks", type=int, default=1024, help="KV cache blocks (default 1024)")
    p.add_argument("--block-size", type=int, default=16, help="tokens per KV block (default 16)")
    p.add_argument("--max-num-seqs", type=int, default=64, help="sequences per batch (default 64)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                   help="on CUDA, run decode steps eagerly (default: captured CUDA graphs)")


def _engine(args):
    import torch

    from llm_node.config import EngineConfig  # lazy: torch
    from llm_node.sched.serving import serving_engine  # lazy: torch

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = None
    if getattr(args, "scheduler", None):
        try:
            policy = policy_from_args(args)
        except (ValueError, OSError) as e:
            raise InputError(str(e)) from None
    return serving_engine(EngineConfig(args.model, device=args.device, dtype=args.dtype, num_kv_blocks=args.kv_blocks,
                                       block_size=args.block_size, max_num_seqs=args.max_num_seqs,
                                       cuda_graphs=args.cuda_graphs), policy)


def generate(args) -> int:
    if args.server:
        return generate_remote(args, None if args.prompt is not None else _prompt_ids(args))
    if not args.model:
        raise InputError("give --model (a local checkpoint) or --server")
    from llm_node.engine.sequence import SamplingParams  # lazy: torch

    engine = _engine(args)
    has_tokenizer = (engine.config.model / "tokenizer.json").is_file()
    tok = Tokenizer(args.model) if args.prompt is not None or has_tokenizer else None
    ids = tok.encode(args.prompt) if args.prompt is not None else _prompt_ids(args)
    params = SamplingParams(temperature=0.0 if args.greedy else args.temperature, top_k=args.top_k,
                            top_p=args.top_p, max_tokens=args.max_new_tokens, seed=args.seed,
                            ignore_eos=args.ignore_eos)
    seq, = engine.generate([ids], params)
    text = tok.decode(seq.completion_ids) if tok else None
    if args.json:
        t = seq.timings()
        print(json.dumps({"prompt_ids": ids, "token_ids": seq.completion_ids, "text": text,
                          "finish_reason": seq.finish_reason,
                          "timings": {"ttft_s": t["ttft"], "ttlt_s": t["ttlt"], "tbt_s": t["tbt"]}}))
    else:
        print(text if text is not None else ",".join(map(str, seq.completion_ids)))
    return 0


def serve_llm_node(args) -> int:
    from llm_node.server import run_llm_node  # lazy: torch

    check_drain_timeout(args.drain_timeout)
    run_llm_node(_engine(args), args.host, args.port, drain_timeout=args.drain_timeout,
                 on_ready=lambda h, p: print(f"llm node listening on {h}:{p}", flush=True))
    return 0


def train(args) -> int:
    from pathlib import Path

    from llm_node.train import TrainConfig, train_demo_model  # lazy: torch

    log = Path(args.out) / "train_log.json"
    if log.is_file() and (Path(args.out) / "model.safetensors").is_file() and not args.force:
        prev = json.loads(log.read_text())
        print(f"{args.out} already holds a trained model (held-out perplexity {prev['val_ppl']:.1f}); "
              "--force retrains it")
        return 0

    cfg = TrainConfig(corpus=args.corpus, out=args.out, minutes=args.minutes, steps=args.steps,
                      vocab_size=args.vocab_size, n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head,
                      context=args.context, batch_size=args.batch_size, lr=args.lr,
                      max_corpus_bytes=int(args.max_corpus_mb * 2**20), threads=args.threads, seed=args.seed)
    result = train_demo_model(cfg)
    print(f"saved {result['params'] / 1e6:.2f} M-parameter GPT-2 to {result['out']}: {result['steps']} steps in "
          f"{result['seconds']:.0f} s, train loss {result['train_loss']:.3f}, held-out perplexity "
          f"{result['val_ppl']:.1f}")
    return 0


def _prompt_ids(args) -> list[int]:
    try:
        return [int(t) for t in args.prompt_ids.split(",") if t.strip()]
    except ValueError:
        raise RequestError(f"--prompt-ids must be comma-separated integers, not {args.prompt_ids!r}") from None
