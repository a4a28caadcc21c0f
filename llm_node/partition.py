"""Compute partitions for PD multiplexing: a prefill partition and a decode partition of one device.

CUDA: disjoint SM groups with Green Contexts. One driver split (`cuDevSmResourceSplitByCount`) gives the
prefill group and the remainder, so the two never share an SM (two green contexts each cut from the whole
device would start at the same SMs); each group gets a green context and a stream of its own
(`cuGreenCtxStreamCreate`), which torch uses as an external stream: work launched on it runs on the
group's SMs only. The driver rounds a group up to its granularity (8 SMs on Hopper); `Partition.units`
is what it gave. Completion is observed by polling a CUDA event (`Event.query()`), never by blocking.
Without Green Context support (no cuda-python `cuda.bindings`, a driver before 12.5, or a driver that
refuses a trial split) the CUDA path falls back to two plain streams, which overlap but do not isolate
SMs, and says so (`green_contexts_status`).
CPU (the analogue, not the real thing): a core split between a prefill worker thread and a decode worker
thread, each with its own torch intra-op thread count (`torch.set_num_threads` is per thread for
OpenMP). Both share the process, the weights and the paged KV cache, exactly as the two Green Contexts do.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)
GREEN_CTX_DRIVER = 12050  # cuGreenCtxStreamCreate


def cpu_units() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _driver():
    """cuda-python's driver bindings, or None."""
    try:
        from cuda.bindings import driver
    except ImportError:
        return None
    return driver


def _check(result):
    """The values of a cuda.bindings call (err, *values); RuntimeError naming the error if it failed."""
    err, *values = result
    if getattr(err, "value", err) != 0:
        raise RuntimeError(f"CUDA driver call failed: {err!r}")
    return values[0] if len(values) == 1 else values


def green_contexts_status(device: str | torch.device = "cuda") -> tuple[bool, str]:
    """(available, reason) for SM partitioning on `device`."""
    device = torch.device(device)
    if device.type != "cuda":
        return False, f"device {device} is not CUDA: using the CPU analogue (a core split between two threads)"
    if not torch.cuda.is_available():
        return False, "CUDA is not available: using the CPU analogue (a core split between two threads)"
    drv = _driver()
    if drv is None or not hasattr(drv, "cuGreenCtxStreamCreate"):
        return False, "cuda-python (cuda.bindings) with green contexts is missing: partitions fall back to streams"
    version = _check(drv.cuDriverGetVersion())
    if version < GREEN_CTX_DRIVER:
        return False, f"CUDA driver {version} predates green-context streams ({GREEN_CTX_DRIVER}): plain streams"
    refused = _green_probe(device.index or 0)
    if refused:
        return False, f"the driver refused a green-context split ({refused}): partitions fall back to streams"
    return True, "CUDA Green Contexts"


@functools.cache
def _green_probe(index: int) -> str | None:
    """None if the driver splits device `index` into green contexts (tried once per process), else why not."""
    try:
        green_split(torch.device("cuda", index), 8)
    except Exception as e:  # noqa: BLE001 - whatever the driver says, there is no SM partitioning here
        return repr(e)
    return None


def green_split(device: torch.device, prefill_units: int) -> list[tuple[object, torch.cuda.Stream, int]]:
    """Disjoint SM groups of `device`: `prefill_units` (rounded up by the driver) and all the others.
    Returns (green context, its stream, SMs) for each; RuntimeError if the driver refuses the split."""
    drv = _driver()
    torch.zeros(1, device=device)  # the driver and the primary context are up
    dev = _check(drv.cuDeviceGet(device.index or 0))
    whole = _check(drv.cuDeviceGetDevResource(dev, drv.CUdevResourceType.CU_DEV_RESOURCE_TYPE_SM))
    groups, _, rest = _check(drv.cuDevSmResourceSplitByCount(1, whole, 0, prefill_units))
    out = []
    for res in (groups[0], rest):
        if res.sm.smCount == 0:
            raise RuntimeError(f"an SM split of {prefill_units} leaves no SM for the other partition")
        desc = _check(drv.cuDevResourceGenerateDesc([res], 1))
        ctx = _check(drv.cuGreenCtxCreate(desc, dev, drv.CUgreenCtxCreate_flags.CU_GREEN_CTX_DEFAULT_STREAM))
        stream = _check(drv.cuGreenCtxStreamCreate(ctx, drv.CUstream_flags.CU_STREAM_NON_BLOCKING, 0))
        out.append((ctx, torch.cuda.get_stream_from_external(int(stream), device), int(res.sm.smCount)))
    return out


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
        with torch.cuda.stream(self.stream):  # a green context's stream runs on its SMs only
            yield

    def event(self):
        """A completion marker recorded after the work just launched: CUDA event, None on CPU."""
        if self.device.type != "cuda":
            return None
        ev = torch.cuda.Event()
        ev.record(self.stream)
        return ev


def make_partitions(device: str | torch.device, prefill_units: int, total: int | None = None):
    """(prefill, decode) partitions; prefill_units == total gives one whole-device partition and None.
    On CUDA with Green Contexts the units are the SMs the driver gave (it rounds the prefill group up)."""
    device = torch.device(device)
    total = total or device_units(device)
    if not 1 <= prefill_units <= total:
        raise ValueError(f"prefill_units must be in [1, {total}], not {prefill_units!r}")
    if prefill_units == total:
        whole = Partition("prefill", device, total, 1.0)
        if device.type == "cuda":
            whole.stream = torch.cuda.Stream(device)
        return whole, None
    if device.type != "cuda":
        return (Partition("prefill", device, prefill_units, prefill_units / total),
                Partition("decode", device, total - prefill_units, (total - prefill_units) / total))
    ok, why = green_contexts_status(device)
    if ok:
        groups = green_split(device, prefill_units)
        return tuple(Partition(name, device, units, units / total, ctx, stream)
                     for name, (ctx, stream, units) in zip(("prefill", "decode"), groups))
    log.warning("SM partitioning unavailable (%s); prefill and decode run on plain streams", why)
    return tuple(Partition(name, device, units, units / total, None, torch.cuda.Stream(device))
                 for name, units in (("prefill", prefill_units), ("decode", total - prefill_units)))


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
