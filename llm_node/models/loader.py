"""Build our torch module for a Hugging Face checkpoint folder and fill it from its *.safetensors files."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from llm_node.config import ModelConfig
from llm_node.errors import ModelFormatError
from llm_node.models.gpt2 import GPT2ForCausalLM
from llm_node.models.llama import LlamaForCausalLM
from llm_node.models.qwen2 import Qwen2ForCausalLM

log = logging.getLogger(__name__)

MODELS: dict[str, type[nn.Module]] = {
    "GPT2LMHeadModel": GPT2ForCausalLM,
    "LlamaForCausalLM": LlamaForCausalLM,
    "Qwen2ForCausalLM": Qwen2ForCausalLM,
}
# Buffers some checkpoints carry that our modules recompute: causal masks, rotary frequencies.
IGNORED = re.compile(r"(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")


def load_model(folder: str | Path, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu") -> nn.Module:
    """The model of `folder` in eval mode; raises ModelFormatError naming any missing or mismatched tensor."""
    folder = Path(folder)
    cfg = ModelConfig.from_folder(folder)
    model = MODELS[cfg.architecture](cfg)
    load_weights(model, folder)
    return model.to(device=device, dtype=dtype).eval()


def load_weights(model: nn.Module, folder: Path) -> None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelFormatError(f"no *.safetensors file in {str(folder)!r}")
    params = dict(model.named_parameters())  # tied weights appear once, under their first name
    seen: set[str] = set()
    tied_head = getattr(model.config, "tie_word_embeddings", False)
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():
                name = _our_name(key, params)
                if name is None:
                    if IGNORED.search(key) or (tied_head and key == "lm_head.weight"):
                        continue
                    raise ModelFormatError(f"unexpected tensor {key!r} in {file.name}")
                tensor, param = f.get_tensor(key), params[name]
                if tensor.shape != param.shape:
                    raise ModelFormatError(f"tensor {key!r} in {file.name} has shape {tuple(tensor.shape)}, "
                                           f"the model expects {tuple(param.shape)}")
                with torch.no_grad():
                    param.copy_(tensor)
                seen.add(name)
    missing = sorted(set(params) - seen)
    if missing:
        raise ModelFormatError(f"checkpoint {str(folder)!r} lacks tensor(s) {', '.join(missing[:5])}"
                               + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    log.info("loaded %d tensors from %d file(s) in %s", len(seen), len(files), folder)


def _our_name(key: str, params: dict) -> str | None:
    """Our parameter name for a checkpoint key; old GPT-2 checkpoints omit the `transformer.` prefix."""
    for name in (key, "transformer." + key):
        if name in params:
            return name
    return None
