"""Train the small demo model: a byte-level BPE tokenizer and a GPT-2 on local text, saved as a HF checkpoint.

No pretrained causal LM can be downloaded here, so the demo trains its own on text that every machine
has (by default the Python standard library's sources). The folder loads in anole and in `transformers`.
"""
from __future__ import annotations

import json
import logging
import math
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm

from llm_node.config import ModelConfig
from llm_node.errors import InputError
from llm_node.models.gpt2 import GPT2ForCausalLM
from llm_node.defaults import DEMO_MODEL

log = logging.getLogger(__name__)
EOS = "<|endoftext|>"
SUFFIXES = {".py", ".txt", ".md", ".rst"}
SKIP_DIRS = {"site-packages", "encodings", "test", "tests", "__pycache__"}  # tables and fixtures, not prose/code


@dataclass(slots=True)
class TrainConfig:
    """Corpus (files or folders; None: the stdlib), output folder, time/step budget and model shape."""

    corpus: list[str] | None = None
    out: str | Path = DEMO_MODEL
    minutes: float = 4.0
    steps: int = 0
    vocab_size: int = 4096
    n_embd: int = 160
    n_layer: int = 4
    n_head: int = 4
    context: int = 128
    batch_size: int = 8
    lr: float = 3e-3
    max_corpus_bytes: int = 3 << 20
    val_fraction: float = 0.05
    threads: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.minutes <= 0 and self.steps <= 0:
            raise InputError("give a positive --minutes or --steps")
        if self.n_embd % self.n_head:
            raise InputError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.vocab_size < 300 or self.context < 8 or self.batch_size < 1:
            raise InputError(f"vocab_size >= 300, context >= 8, batch_size >= 1 (got {self.vocab_size}, "
                             f"{self.context}, {self.batch_size})")
        if not 0 < self.val_fraction < 0.5:
            raise InputError(f"val_fraction must be in (0, 0.5), not {self.val_fraction}")


def read_corpus(paths: list[str] | None, max_bytes: int) -> list[str]:
    """Texts of the files under `paths` (sorted, deterministic) up to `max_bytes` in all."""
    roots = [Path(p) for p in (paths or [sysconfig.get_paths()["stdlib"]])]
    files = []
    for root in roots:
        if not root.exists():
            raise InputError(f"corpus path {str(root)!r} does not exist")
        files += [root] if root.is_file() else sorted(
            f for f in root.rglob("*") if f.suffix in SUFFIXES and not SKIP_DIRS & set(f.parts) and f.is_file())
    texts, total = [], 0
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total >= max_bytes:
            break
    if total < 10_000:
        raise InputError(f"the corpus has {total} characters; give at least 10,000")
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def encode(tok: Tokenizer, texts: list[str]) -> torch.Tensor:
    eos = tok.token_to_id(EOS)
    ids = []
    for enc in tok.encode_batch(texts):
        ids += enc.ids + [eos]
    return torch.tensor(ids, dtype=torch.long)


def model_config(cfg: TrainConfig, eos: int) -> dict:
    """The HF GPT-2 config.json of the demo model."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
            "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_positions": cfg.context,
            "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "tie_word_embeddings": True, "bos_token_id": eos, "eos_token_id": eos, "dtype": "float32",
            "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0}


def init_weights(model: GPT2ForCausalLM, n_layer: int) -> None:
    """GPT-2 initialisation: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.zeros_(p)
        elif ".ln_" in name:
            torch.nn.init.ones_(p)
        else:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
            torch.nn.init.normal_(p, std=std)


def batches(data: torch.Tensor, context: int, batch_size: int, gen: torch.Generator):
    """Random windows: (inputs, targets) int64[B, context]."""
    while True:
        start = torch.randint(0, len(data) - context - 1, (batch_size,), generator=gen)
        win = torch.stack([data[s:s + context + 1] for s in start.tolist()])
        yield win[:, :-1], win[:, 1:]


def loss_of(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pos = torch.arange(x.shape[1]).expand_as(x)
    logits = model.compute_logits(model(x, pos))
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def evaluate(model, data: torch.Tensor, context: int, max_windows: int = 64) -> float:
    """Mean next-token loss (nats) over consecutive held-out windows."""
    n = min(max_windows, (len(data) - 1) // context)
    x = data[:n * context].view(n, context)
    y = data[1:n * context + 1].view(n, context)
    return float(sum(loss_of(model, x[i:i + 8], y[i:i + 8]) * len(x[i:i + 8]) for i in range(0, n, 8)) / n)


def train_demo_model(cfg: TrainConfig) -> dict:
    """Train and save; returns a summary (params, steps, seconds, train_loss, val_loss, val_ppl, out)."""
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    texts = read_corpus(cfg.corpus, cfg.max_corpus_bytes)
    n_val = max(1, int(len(texts) * cfg.val_fraction))
    tok = train_tokenizer(texts[:-n_val], cfg.vocab_size)
    train_ids, val_ids = encode(tok, texts[:-n_val]), encode(tok, texts[-n_val:])
    if len(val_ids) < cfg.context + 2:
        raise InputError(f"held-out text has {len(val_ids)} tokens; a longer corpus is needed")
    log.info("corpus: %d files, %d train / %d held-out tokens", len(texts), len(train_ids), len(val_ids))
    eos = tok.token_to_id(EOS)
    hf_config = model_config(cfg, eos)
    model = GPT2ForCausalLM(ModelConfig.from_hf(hf_config))
    init_weights(model, cfg.n_layer)
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.1)
    data = batches(train_ids, cfg.context, cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    budget = cfg.minutes * 60 if cfg.minutes > 0 else math.inf
    t0, step, ema = time.perf_counter(), 0, None
    bar = tqdm(total=cfg.steps or int(budget), unit="step" if cfg.steps else "s", desc="train")
    while True:
        elapsed = time.perf_counter() - t0
        progress = step / cfg.steps if cfg.steps else elapsed / budget
        if progress >= 1 or elapsed >= budget:
            break
        lr = cfg.lr * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(data)
        loss = loss_of(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        bar.update(1 if cfg.steps else int(time.perf_counter() - t0) - bar.n)
        bar.set_postfix(step=step, loss=f"{ema:.3f}", lr=f"{lr:.1e}")
        if step % 50 == 0:
            log.info("step %d loss %.3f", step, ema)
    bar.close()
    model.eval()
    val_loss = evaluate(model, val_ids, cfg.context)
    summary = {"params": n_params, "steps": step, "seconds": time.perf_counter() - t0, "train_loss": ema,
               "val_loss": val_loss, "val_ppl": math.exp(val_loss), "train_tokens": len(train_ids),
               "val_tokens": len(val_ids), "out": str(cfg.out)}
    save_checkpoint(model, tok, hf_config, Path(cfg.out), {**summary, "config": asdict(cfg)})
    return summary


def save_checkpoint(model: GPT2ForCausalLM, tok: Tokenizer, hf_config: dict, out: Path, meta: dict) -> None:
    """config.json, model.safetensors (tied head omitted), tokenizer.json + tokenizer_config.json."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, out / "model.safetensors", metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config, indent=2))
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOS, "eos_token": EOS, "unk_token": EOS,
         "model_max_length": hf_config["n_positions"]}, indent=2))
    (out / "train_log.json").write_text(json.dumps(meta, indent=2, default=str))
    log.info("saved %s", out)
