"""Compute partitions for PD multiplexing: a prefill partition and a decode partition of one device.

CUDA: SM partitions with Green Contexts (`torch.cuda.green_contexts.GreenContext.create(num_sms=...)`),
each with its own stream; work is launched on the partition's stream inside its context and completion
is observed by polling a CUDA event (`Event.query()`), never by blocking. Without Green Context support
(older driver/torch, or no CUDA) the CUDA path falls back to two plain streams, which overlap but do not
isolate SMs, and says so.
CPU (the analogue, not the real thing): a core split between a prefill worker thread and a decode worker
thread, each with its own torch intra-op thread count (`torch.set_num_threads` is per thread for
OpenMP). Both share the process, the weights and the paged KV cache, exactly as the two Green Contexts do.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


def cpu_units() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def green_contexts_status(device: str | torch.device = "cuda") -> tuple[bool, str]:
    """(available, reason) for SM partitioning on `device`."""
    device = torch.device(device)
    if device.type != "cuda":
        return False, f"device {device} is not CUDA: using the CPU analogue (a core split between two threads)"
    if not torch.cuda.is_available():
        return False, "CUDA is not available: using the CPU analogue (a core split between two threads)"
    try:
        from torch.cuda.green_contexts import SUPPORTED
    except ImportError:
        return False, f"torch {torch.__version__} has no torch.cuda.green_contexts: partitions fall back to streams"
    if not SUPPORTED:
        return False, "this torch build lacks Green Context support: partitions fall back to plain streams"
    return True, "CUDA Green Contexts"


def device_units(device: str | torch.device) -> int:
    """SMs of a CUDA device, cores available to this process on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return cpu_units()


@dataclass
class Partition:
    """`units` SMs (CUDA) or cores (CPU) of `device` for one phase; `share` = units / all units."""

    name: str
    device: torch.device
    units: int
    share: float
    green: object = None
    stream: object = None

    @contextmanager
    def active(self):
        """Run the body in this partition (call from the partition's own worker thread)."""
        if self.device.type != "cuda":
            torch.set_num_threads(max(1, self.units))
            yield
            return
        if self.green is not None:
            self.green.set_context()
        try:
            with torch.cuda.stream(self.stream):
                yield
        finally:
            if self.green is not None:
                self.green.pop_context()

    def event(self):
        """A completion marker recorded after the work just launched: CUDA event, None on CPU."""
        if self.device.type != "cuda":
            return None
        ev = torch.cuda.Event()
        ev.record(self.stream)
        return ev


def make_partitions(device: str | torch.device, prefill_units: int, total: int | None = None):
    """(prefill, decode) partitions; prefill_units == total gives one whole-device partition and None."""
    device = torch.device(device)
    total = total or device_units(device)
    if not 1 <= prefill_units <= total:
        raise ValueError(f"prefill_units must be in [1, {total}], not {prefill_units!r}")
    parts = []
    for name, units in (("prefill", prefill_units), ("decode", total - prefill_units)):
        if units == 0:
            parts.append(None)
            continue
        p = Partition(name, device, units, units / total)
        if device.type == "cuda":
            ok, why = green_contexts_status(device)
            if ok and units < total:
                from torch.cuda.green_contexts import GreenContext
                p.green = GreenContext.create(num_sms=units, device_id=device.index or 0)
                p.stream = p.green.Stream()
            else:
                if units < total:
                    log.warning("SM partitioning unavailable (%s); %s runs on a plain stream", why, name)
                p.stream = torch.cuda.Stream(device)
        parts.append(p)
    return parts[0], parts[1]


class Worker:
    """A thread that runs jobs in a partition; submit(fn, partition) returns a Future whose done() is the
    non-blocking completion poll (CUDA jobs also return their event for the driver to query)."""

    def __init__(self, partition: Partition | None = None, name: str = "worker"):
        self.partition = partition
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"anole-{name}", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            fn, part, fut = item
            try:
                if part is None:
                    fut.set_result(fn())
                else:
                    with part.active():
                        fut.set_result(fn())
            except BaseException as e:  # handed to the driver, which re-raises
                fut.set_exception(e)

    def submit(self, fn, partition: Partition | None = None) -> Future:
        fut: Future = Future()
        self.q.put((fn, partition or self.partition, fut))
        return fut

    def close(self):
        self.q.put(None)
        self.thread.join(timeout=10)
