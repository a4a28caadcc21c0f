"""`anole llm profile`: measure prefill and decode step latency per partition split and fit the latency
model (format in llm_node/sched/latency.py and docs/latency-model.md).

For every split the prefill grid runs on the prefill partition *while* the decode partition runs decode
steps in a loop, and the decode grid while the prefill partition prefills: the fitted coefficients
include the partition's slowdown and the interference between the two. `full` is each phase alone on the
whole device. Coefficients are non-negative least squares fits; relative errors are stored under "fit".
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.optimize import nnls

from llm_node.engine.scheduler import Batch
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.partition import Worker, device_units, green_contexts_status, make_partitions
from llm_node.sched.latency import DECODE_KEYS, PREFILL_KEYS, LatencyModel, Split, pad_cells, pairs

log = logging.getLogger(__name__)


MIXED_GRID = (((128, 0), (4, 128)), ((256, 0), (8, 256)), ((64, 256), (16, 128)), ((32, 512), (8, 512)),
              ((256, 256), (2, 64)), ((128, 0), (32, 256)))


@dataclass(slots=True)
class ProfileConfig:
    """prefill_grid: (new tokens, cached context); decode_grid: (batch, context per sequence);
    splits: prefill units per split (None: every core split on CPU, quarters of the SMs on CUDA)."""

    prefill_grid: tuple = ((32, 0), (128, 0), (256, 0), (512, 0), (32, 512), (128, 512), (256, 256), (64, 1024))
    decode_grid: tuple = ((1, 128), (4, 128), (16, 128), (32, 128), (8, 512), (32, 512))
    repeats: int = 3
    splits: tuple | None = None
    background_decode: tuple = (16, 256)   # what the other partition runs while prefill is timed
    background_prefill: tuple = (256, 0)   # ... and while decode is timed
    mixed_grid: tuple = MIXED_GRID            # ((new tokens, context), (decode batch, context)) per step

    def __post_init__(self):
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, not {self.repeats!r}")

    def within(self, max_len: int) -> "ProfileConfig":
        """This grid with every length scaled down (same shape) so no sequence exceeds ``max_len`` tokens
        (a model with a short position table); unchanged when it already fits."""
        pairs = [*self.prefill_grid, self.background_prefill, *(p for p, _ in self.mixed_grid)]
        decodes = [*self.decode_grid, self.background_decode, *(d for _, d in self.mixed_grid)]
        longest = max([n + c for n, c in pairs] + [c + 1 for _, c in decodes])
        if longest <= max_len:
            return self
        f = (max_len - 1) / longest
        pf = lambda nc: (max(1, int(nc[0] * f)), int(nc[1] * f))        # noqa: E731 - (new tokens, context)
        dc = lambda bc: (bc[0], int(bc[1] * f))                          # noqa: E731 - (batch, context)
        return replace(self, prefill_grid=tuple(dict.fromkeys(map(pf, self.prefill_grid))),
                       decode_grid=tuple(dict.fromkeys(map(dc, self.decode_grid))),
                       background_prefill=pf(self.background_prefill), background_decode=dc(self.background_decode),
                       mixed_grid=tuple((pf(p), dc(d)) for p, d in self.mixed_grid))


class Bench:
    """Timed prefill / decode steps on an engine's model runner and KV cache (contents are irrelevant)."""

    def __init__(self, engine):
        self.runner, self.bm, self.device = engine.runner, engine.block_manager, engine.runner.device
        self.lock = threading.Lock()

    def _seq(self, ctx: int, new: int) -> Sequence:
        seq = Sequence([5] * (ctx + new), SamplingParams())
        with self.lock:
            if not self.bm.grow(seq, ctx + new):
                raise ValueError(f"KV cache too small for {ctx + new} tokens; raise --kv-blocks")
        seq.num_computed_tokens = ctx
        return seq

    def run(self, shapes: list[tuple[int, int]]) -> float:
        """Seconds of one step computing shapes[i] = (new tokens, cached context) for sequence i."""
        seqs = [self._seq(c, n) for n, c in shapes]
        batch = Batch()
        for s, (n, _) in zip(seqs, shapes):
            batch.add(s, n)
        try:
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            t = time.perf_counter()
            self.runner.run(batch)
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            return time.perf_counter() - t
        finally:
            with self.lock:
                for s in seqs:
                    self.bm.free(s)

    def median(self, shapes, repeats: int) -> float:
        self.run(shapes)
        return statistics.median(self.run(shapes) for _ in range(repeats))


def prefill_shapes(n: int, ctx: int):
    return [(n, ctx)]


def decode_shapes(b: int, ctx: int):
    return [(1, ctx)] * b


def prefill_row(n: int, ctx: int) -> list[float]:
    return [1.0, n, pairs(n, ctx), ctx + n]


def decode_row(b: int, ctx: int) -> list[float]:
    return [1.0, b, b * (ctx + 1)]


def fit(rows, times, keys) -> tuple[dict, float]:
    """Non-negative least squares on relative error; (coefficients, mean relative error)."""
    a, y = np.asarray(rows, float), np.asarray(times, float)
    coef, _ = nnls(a / y[:, None], np.ones_like(y))
    err = float(np.mean(np.abs(a @ coef - y) / y))
    return dict(zip(keys, map(float, coef))), err


def measure(bench: Bench, cfg: ProfileConfig, own: Worker, other: Worker | None, phase: str):
    """Times of the `phase` grid on worker `own` while `other` (if any) loops the opposite phase."""
    stop = threading.Event()
    bg_shape = decode_shapes(*cfg.background_decode) if phase == "prefill" else prefill_shapes(*cfg.background_prefill)

    def background():
        while not stop.is_set():
            bench.run(bg_shape)

    bg = other.submit(background) if other is not None else None
    try:
        grid = cfg.prefill_grid if phase == "prefill" else cfg.decode_grid
        shapes = prefill_shapes if phase == "prefill" else decode_shapes
        rows = prefill_row if phase == "prefill" else decode_row
        times = [own.submit(lambda g=g: bench.median(shapes(*g), cfg.repeats)).result() for g in grid]
        return [rows(*g) for g in grid], times
    finally:
        stop.set()
        if bg is not None:
            bg.result()


def fit_mixed(bench: Bench, cfg: ProfileConfig, model: LatencyModel, device, units: int) -> tuple[float, dict]:
    """Measure mixed steps (a prefill chunk and decodes in one step, as chunked prefill runs them) on the
    whole device and fit `pad`, the cost per wasted cell of a padded attention layout (least squares on
    the residual of the two phase models). Returns (pad, errors of the formula without and with it)."""
    p_part, _ = make_partitions(device, units, units)
    worker, rows = Worker(p_part), []
    try:
        for (n, ctx), (b, dctx) in cfg.mixed_grid:
            shapes = prefill_shapes(n, ctx) + decode_shapes(b, dctx)
            t = worker.submit(lambda s=shapes: bench.median(s, cfg.repeats)).result()
            items = [(n, ctx + n, False)] + [(1, dctx + 1, True)] * b
            rows.append((t, model.step_time(items), pad_cells(items)))
    finally:
        worker.close()
    y, p, f = (np.array(c, float) for c in zip(*rows))
    pad = max(0.0, float(np.sum((y - p) * f) / max(np.sum(f * f), 1e-30)))
    err = lambda pred: float(np.mean(np.abs(pred - y) / y))
    sse = lambda pred: float(np.sum((pred - y) ** 2))                  # what the pad fit minimizes
    return pad, {"mixed_rel_err_no_pad": err(p), "mixed_rel_err": err(p + pad * f),
                 "mixed_sse_no_pad": sse(p), "mixed_sse": sse(p + pad * f)}


def kv_transfer_per_token(engine, tokens: int = 1024) -> float:
    """Seconds per token to copy one token's K and V of every layer to other slots (a KV migration)."""
    kv = engine.runner.kv
    n = min(tokens, kv.shape[2] // 2)
    src, dst = torch.arange(n, device=kv.device), torch.arange(n, 2 * n, device=kv.device)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        kv.index_copy_(2, dst, kv.index_select(2, src))
        if kv.device.type == "cuda":
            torch.cuda.synchronize(kv.device)
        best = min(best, time.perf_counter() - t)
    return best / n


def profile(engine, cfg: ProfileConfig | None = None) -> LatencyModel:
    """Measure and fit on the engine's device; see the module docstring."""
    cfg = (cfg or ProfileConfig()).within(engine.max_model_len)
    device = engine.runner.device
    units = device_units(device)
    ok, why = green_contexts_status(device)
    log.info("partitions: %s", why)
    bench = Bench(engine)
    fits = {}

    def phase_pair(prefill_units: int):
        p_part, d_part = make_partitions(device, prefill_units, units)
        workers = [Worker(p_part)] + ([Worker(d_part)] if d_part is not None else [])
        try:
            if d_part is None:  # whole device, each phase alone
                pr, pt = measure(bench, cfg, workers[0], None, "prefill")
                dr, dt = measure(bench, cfg, workers[0], None, "decode")
            else:
                pr, pt = measure(bench, cfg, workers[0], workers[1], "prefill")
                dr, dt = measure(bench, cfg, workers[1], workers[0], "decode")
        finally:
            for w in workers:
                w.close()
        (pc, pe), (dc, de) = fit(pr, pt, PREFILL_KEYS), fit(dr, dt, DECODE_KEYS)
        fits[str(prefill_units)] = {"prefill_rel_err": pe, "decode_rel_err": de}
        return pc, dc, p_part.units

    pc, dc, _ = phase_pair(units)
    full = Split(1.0, pc, dc, units, units)
    pad, fits["mixed"] = fit_mixed(bench, cfg, LatencyModel("tmp", full), device, units)
    if cfg.splits is not None:
        split_units = list(cfg.splits)
    elif device.type == "cuda":
        split_units = sorted({max(1, units * k // 4) for k in (1, 2, 3)})
    else:
        split_units = list(range(1, units))
    splits = []
    for k in split_units:
        log.info("profiling split: %d of %d units to prefill", k, units)
        pc, dc, k = phase_pair(k)  # the SMs the driver gave (it rounds a green context up)
        splits.append(Split(k / units, pc, dc, k, units - k))
    if not splits:
        log.warning("%s has a single unit: no partition split can be measured, PD multiplexing is unavailable",
                    device)
    kind = "cuda" if device.type == "cuda" else "cpu"
    name = (torch.cuda.get_device_name(device) if kind == "cuda"
            else f"cpu ({units} cores; CPU analogue of SM partitions: a core split between two threads)")
    return LatencyModel(name, full, splits, kv_transfer_per_token(engine), kind, units,
                        {"partitioning": why if not ok else "green_contexts",
                         "model": str(engine.config.model), "dtype": engine.config.dtype,
                         "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "fit": fits}, pad)
