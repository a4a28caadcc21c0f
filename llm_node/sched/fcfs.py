"""FCFS continuous batching: the engine's own policy (prefill steps first, then decode steps)."""
from llm_node.engine.scheduler import FCFSPolicy as _EngineFCFS


class FCFSPolicy(_EngineFCFS):
    """vLLM v0 / nano-vllm scheduling, unchanged: the baseline every other scheduler is measured against."""

    name = "fcfs"
