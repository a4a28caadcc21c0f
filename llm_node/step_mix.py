"""Step mode of a generate request: the client supplies, at every step, a sparse distribution to mix in.

The kNN-LM over the disaggregated system (docs/ralm.md): before sampling each token the LLM node streams
the last-layer hidden state of the position ({step, seq, hidden: float32[H]}) and waits for a T_MIX message
{seq, step, tokens: int64[k], probs: float32[k], lam}; it then samples from
``log(lam * p + (1 - lam) * p_lm)`` with p the sparse distribution (summed per token). Only H floats go
out and 2k numbers come back per token; the V-sized distribution never crosses the network.
"""
from __future__ import annotations

import itertools
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np
import torch

from llm_node.errors import RequestError
from llm_node.knn import interpolate

_keys = itertools.count(1)


def mix(logits: torch.Tensor, tokens: np.ndarray, probs: np.ndarray, lam: float) -> torch.Tensor:
    """log(lam * p + (1 - lam) * softmax(logits)) with p[tokens] += probs; float32[V]."""

    if len(tokens) == 0 or lam == 0.0:
        return torch.log_softmax(logits.float(), -1)
    p = torch.zeros(logits.shape[-1], dtype=torch.float32)
    p.scatter_add_(0, torch.tensor(tokens, dtype=torch.int64), torch.tensor(probs, dtype=torch.float32))
    return interpolate(logits.float().cpu()[None], torch.log(p)[None], lam)[0].to(logits.device)


def check_mix(tokens, probs, lam, vocab: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The fields of a T_MIX message, checked: RequestError names the bad one."""
    tokens = np.asarray(tokens if tokens is not None else [], dtype=np.int64).reshape(-1)
    probs = np.asarray(probs if probs is not None else [], dtype=np.float32).reshape(-1)
    if tokens.shape != probs.shape:
        raise RequestError(f"tokens and probs must have the same length, not {len(tokens)} and {len(probs)}")
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab):
        raise RequestError(f"mix tokens must be in [0, {vocab})")
    if not np.all(np.isfinite(probs)) or (probs < 0).any() or probs.sum() > 1.001:
        raise RequestError("mix probs must be finite, >= 0 and sum to at most 1")
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not 0.0 <= lam <= 1.0:
        raise RequestError(f"lam must be a number in [0, 1], not {lam!r}")
    return tokens, probs, float(lam)


class StepGroup:
    """The step-mode requests of one engine step (engine thread only): their hidden states go out
    together when the first of them waits for its distribution, each tagged ``group`` (an id) and
    ``group_size``, so a client that owns all of them knows at once that it has every query of the step
    and can search them as one batch, without a timer."""

    def __init__(self):
        self._ids = itertools.count(1)
        self._items: list = []

    def add(self, emit, item: dict) -> None:
        self._items.append((emit, item))

    def flush(self) -> None:
        items, self._items = self._items, []
        if not items:
            return
        gid = next(self._ids)
        for emit, item in items:
            emit({**item, "group": gid, "group_size": len(items)})


class StepMixer:
    """The logits processor of one step-mode request (engine thread), fed by T_MIX (event-loop thread).

    ``submit`` (called for the whole batch first) emits the hidden state (through ``group``, when given,
    with the rest of the step's); ``__call__`` waits for the client's distribution up to ``timeout``
    seconds, then mixes it in."""

    def __init__(self, emit, vocab: int, timeout: float = 30.0, group: StepGroup | None = None):
        self.key, self.emit, self.vocab, self.timeout, self.group = next(_keys), emit, vocab, timeout, group
        self.step = 0
        self._fut: Future | None = None

    def submit(self, token_ids, logits, hidden) -> None:
        self._fut = Future()
        item = {"step": self.step, "seq": self.key, "hidden": hidden.float().cpu().numpy()}
        if self.group is None:
            self.emit(item)
        else:
            self.group.add(self.emit, item)

    def feed(self, step: int, tokens, probs, lam) -> None:
        fut = self._fut
        if fut is None or fut.done() or step != self.step:
            raise RequestError(f"request {self.key} is not waiting for step {step} (it is at step {self.step})")
        fut.set_result(check_mix(tokens, probs, lam, self.vocab))

    def fail(self, message: str) -> None:
        fut = self._fut
        if fut is not None and not fut.done():
            fut.set_exception(RequestError(message))

    def __call__(self, token_ids, logits: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        if self._fut is None:                    # an engine without the two-phase hook
            self.submit(token_ids, logits, hidden)
        if self.group is not None:
            self.group.flush()                   # every submit of this step came first
        try:
            tokens, probs, lam = self._fut.result(timeout=self.timeout)
        except FutureTimeout:
            raise RequestError(f"no T_MIX for step {self.step} within {self.timeout} s") from None
        finally:
            self._fut = None
            self.step += 1
        return mix(logits, tokens, probs, lam)
