"""Qwen2: the Llama architecture with biases on the q, k and v projections (ModelConfig.qkv_bias)."""
from llm_node.models.llama import LlamaForCausalLM


class Qwen2ForCausalLM(LlamaForCausalLM):
    """Same modules and checkpoint names as Llama; ModelConfig.from_hf turns the q/k/v biases on."""
