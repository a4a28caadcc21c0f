"""The two configs of the LLM node: the engine's (what the caller chooses) and the model's (config.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llm_node.errors import ModelFormatError

ROPE_TYPES = ("default", "linear", "llama3")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(slots=True)
class EngineConfig:
    """How the engine runs a checkpoint folder.

    model:          folder with config.json, *.safetensors and (optionally) tokenizer files
    device:         "cpu", "cuda", "cuda:1", ...
    dtype:          weights and KV cache dtype: float32 | float16 | bfloat16
    block_size:     tokens per KV cache block
    num_kv_blocks:  blocks in the paged KV cache (shared by all layers' tables)
    max_num_seqs:   sequences in one batch at most
    max_num_batched_tokens: new tokens in one step at most (bounds a prefill batch)
    max_model_len:  longest sequence (prompt + output); None: the model's context length
    enable_prefix_caching: reuse full KV blocks of identical prompt prefixes
    seed:           seed of the sampling generator shared by requests without their own seed
    cuda_graphs:    on CUDA, capture decode steps as CUDA graphs at start (engine/cuda_graphs.py)
    """

    model: str | Path
    device: str = "cpu"
    dtype: str = "float32"
    block_size: int = 16
    num_kv_blocks: int = 1024
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 4096
    max_model_len: int | None = None
    enable_prefix_caching: bool = True
    seed: int = 0
    cuda_graphs: bool = True

    def __post_init__(self):
        self.model = Path(self.model)
        if not self.model.is_dir():
            raise ModelFormatError(f"model folder {str(self.model)!r} does not exist")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {self.dtype!r}")
        for name in ("block_size", "num_kv_blocks", "max_num_seqs", "max_num_batched_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)!r}")
        if self.max_model_len is not None and self.max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, not {self.max_model_len!r}")
        torch.device(self.device)  # raises on a malformed device string

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass(slots=True)
class ModelConfig:
    """The architecture fields our models use, read from a Hugging Face config.json."""

    architecture: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    norm_eps: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    hidden_act: str
    rope_theta: float = 10000.0
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    eos_token_ids: tuple[int, ...] = field(default_factory=tuple)
    rope_scaling: dict | None = None  # rope_parameters of a "linear" or "llama3" rope type

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ModelFormatError(f"num_attention_heads {self.num_heads} is not a multiple of "
                                   f"num_key_value_heads {self.num_kv_heads}")

    @classmethod
    def from_folder(cls, folder: str | Path) -> "ModelConfig":
        path = Path(folder) / "config.json"
        if not path.is_file():
            raise ModelFormatError(f"{str(path)!r} not found")
        return cls.from_hf(json.loads(path.read_text()))

    @classmethod
    def from_hf(cls, c: dict) -> "ModelConfig":
        arch = (c.get("architectures") or [None])[0]
        eos = c.get("eos_token_id")
        eos = tuple(eos) if isinstance(eos, list) else (() if eos is None else (eos,))
        try:
            if arch == "GPT2LMHeadModel":
                for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
                    if c.get(flag):
                        raise ModelFormatError(f"GPT-2 option {flag}=true is not supported")
                h = c["n_embd"]
                return cls(arch, c["vocab_size"], h, c["n_layer"], c["n_head"], c["n_head"], h // c["n_head"],
                           c.get("n_inner") or 4 * h, c["layer_norm_epsilon"], c["n_positions"],
                           c.get("tie_word_embeddings", True), c.get("activation_function", "gelu_new"),
                           eos_token_ids=eos)
            if arch in ("LlamaForCausalLM", "Qwen2ForCausalLM"):
                rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
                rope_type = rope.get("rope_type", rope.get("type", "default"))
                if rope_type not in ROPE_TYPES:
                    raise ModelFormatError(f"rope type {rope_type!r} is not supported ({', '.join(ROPE_TYPES)})")
                if rope.get("partial_rotary_factor", 1.0) != 1.0:
                    raise ModelFormatError("partial rotary embeddings are not supported")
                if c.get("use_sliding_window"):
                    raise ModelFormatError("sliding-window attention is not supported")
                heads = c["num_attention_heads"]
                qwen = arch == "Qwen2ForCausalLM"
                bias = c.get("attention_bias", False)
                return cls(arch, c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], heads,
                           c.get("num_key_value_heads") or heads, c.get("head_dim") or c["hidden_size"] // heads,
                           c["intermediate_size"], c["rms_norm_eps"], c["max_position_embeddings"],
                           c.get("tie_word_embeddings", False), c.get("hidden_act", "silu"),
                           rope_theta=rope.get("rope_theta", c.get("rope_theta", 10000.0)),
                           qkv_bias=qwen or bias, o_bias=bias and not qwen, mlp_bias=c.get("mlp_bias", False),
                           eos_token_ids=eos, rope_scaling=None if rope_type == "default" else dict(rope))
        except KeyError as e:
            raise ModelFormatError(f"config.json of {arch} lacks the field {e.args[0]!r}") from None
        raise ModelFormatError(f"unknown architecture {arch!r}; supported: GPT2LMHeadModel, "
                               "LlamaForCausalLM, Qwen2ForCausalLM")
