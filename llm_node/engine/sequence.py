"""A request as the engine sees it: sampling parameters, tokens, KV blocks, timing record."""
from __future__ import annotations

import itertools
import math
import numbers
import time
from dataclasses import dataclass
from enum import Enum, auto
from typing import Callable

import torch

from llm_node.errors import RequestError

LogitsProcessor = Callable[[list[int], torch.Tensor, torch.Tensor], torch.Tensor]
"""(token_ids so far, logits float32[V], hidden [H]) -> logits float32[V]; e.g. log of a kNN-LM mixture.
The logits row is the request's own: a processor may change it in place and return it (no copy)."""


@dataclass(slots=True)
class SamplingParams:
    """How one request samples and when it stops.

    temperature: 0 is greedy; top_k: 0 keeps all; top_p: nucleus mass in (0, 1]
    seed:        per-request generator seed (None: the engine's shared generator)
    return_hidden: keep the last-layer hidden state (the lm_head input) of each generated position
    logits_processor: applied to the logits of this request before sampling
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_tokens: int = 16
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    seed: int | None = None
    return_hidden: bool = False
    logits_processor: LogitsProcessor | None = None

    def __post_init__(self):
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
                raise RequestError(f"{name} must be a finite number, not {value!r}")
        if not self.temperature >= 0:
            raise RequestError(f"temperature must be >= 0, not {self.temperature!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise RequestError(f"top_k must be an integer >= 0, not {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise RequestError(f"top_p must be in (0, 1], not {self.top_p!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise RequestError(f"max_tokens must be an integer >= 1, not {self.max_tokens!r}")
        self.stop_token_ids = tuple(int(t) for t in self.stop_token_ids)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


class Status(Enum):
    WAITING = auto()
    RUNNING = auto()
    FINISHED = auto()


class Sequence:
    """Prompt plus generated tokens. The first `num_computed_tokens` have K/V in the blocks of `block_table`."""

    _ids = itertools.count()

    def __init__(self, prompt_ids: list[int], params: SamplingParams, arrival: float | None = None):
        self.seq_id = next(Sequence._ids)
        self.token_ids = list(prompt_ids)
        self.num_prompt_tokens = len(prompt_ids)
        self.params = params
        self.status = Status.WAITING
        self.block_table: list[int] = []
        self.num_computed_tokens = 0
        self.num_cached_tokens = 0  # prompt tokens found in the prefix cache at admission
        self.num_preemptions = 0
        self.finish_reason: str | None = None  # "stop" | "length" | "abort" | "error"
        self.error: str | None = None
        self.slo = None  # an llm_node.sched.slo.SLO for the SLO-aware policies; None: best effort
        self.generator: torch.Generator | None = None
        self.hidden_states: list[torch.Tensor] = []
        self.arrival_time = time.perf_counter() if arrival is None else arrival
        self.token_times: list[float] = []
        self.finish_time: float | None = None

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def completion_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens:]

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED

    def timings(self) -> dict:
        """Seconds: ttft (arrival -> first token), tbt (between tokens), ttlt (arrival -> finish)."""
        t = self.token_times
        return {"ttft": t[0] - self.arrival_time if t else None,
                "tbt": [b - a for a, b in zip(t, t[1:])],
                "ttlt": None if self.finish_time is None else self.finish_time - self.arrival_time}

    def __repr__(self) -> str:
        return (f"Sequence(id={self.seq_id}, {self.status.name}, tokens={len(self)}, "
                f"computed={self.num_computed_tokens}, blocks={self.block_table})")
