"""Defaults shared by the LLM node, the RALM demo, the CLI and the benchmarks (no torch import here)."""
from pathlib import Path

DEMO_MODEL = Path("build/llm/demo-gpt2")
"""Where `anole llm train` writes the demo's small GPT-2 and where every command looks for it."""
