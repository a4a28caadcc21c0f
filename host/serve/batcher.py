"""Fair, bounded dynamic batching for the coordinator.

Requests wait as jobs; each fan-out batch (at most ``max_batch`` queries) is filled by water-filling over
the waiting small jobs (those of at most ``max_batch`` queries), smallest remainder first, so a small request rides
in the next batch however large the requests before it are; large requests are cut into slices that go in
batches of their own ("bulk") when no small one waits.  Bulk batches hold at most ``max_inflight - 1`` of the
``max_inflight`` fan-out slots, so a small request finds a free slot.  More than ``max_queued`` queries
waiting: E_BUSY.  A job whose deadline passes while it waits is dropped with E_DEADLINE.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np

from host.net.frames import E_BUSY, E_DEADLINE, RpcError
from host.net.timeouts import within_at


@dataclasses.dataclass(eq=False)
class Job:
    """One request: its queries and where each answered slice goes."""

    queries: np.ndarray
    nprobe: int
    k: int
    deadline: float | None
    done: asyncio.Future
    t_in: float = dataclasses.field(default_factory=time.perf_counter)
    sent: int = 0                       # queries handed to batches so far
    parts: dict = dataclasses.field(default_factory=dict)   # offset -> SearchResult
    answered: int = 0

    @property
    def left(self) -> int:
        return len(self.queries) - self.sent

    def fail(self, e: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(e)


class FairBatcher:
    """Runs ``run(batch)`` for batches of (job, lo, hi) slices; see the module docstring."""

    def __init__(self, run, *, max_batch: int, max_inflight: int, max_wait_s: float, max_queued: int):
        self.run, self.max_batch, self.max_inflight = run, max_batch, max_inflight
        self.max_wait_s, self.max_queued = max_wait_s, max_queued
        self.jobs: list[Job] = []
        self.queued = 0
        self.inflight = self.inflight_bulk = 0
        self._cond = asyncio.Condition()
        self._task = asyncio.create_task(self._loop())

    async def submit(self, queries: np.ndarray, nprobe: int, k: int, deadline: float | None) -> Job:
        """Queue a request and wait for all of its slices; raises the first error of any slice."""
        if self.queued + len(queries) > self.max_queued:
            raise RpcError(E_BUSY, f"coordinator busy: {self.queued} queries queued (limit {self.max_queued}); "
                                   "retry later")
        job = Job(queries, nprobe, k, deadline, asyncio.get_running_loop().create_future())
        async with self._cond:
            self.jobs.append(job)
            self.queued += len(queries)
            self._cond.notify_all()
        try:
            async with within_at(deadline):
                await job.done
        except asyncio.TimeoutError:
            raise RpcError(E_DEADLINE, f"deadline passed with {job.answered} of {len(queries)} queries answered") \
                from None
        finally:
            if job in self.jobs:
                self.jobs.remove(job)
                self.queued -= job.left
        return job

    def _ready(self) -> bool:
        if self.inflight >= self.max_inflight or not self.jobs:
            return False
        small = any(len(j.queries) <= self.max_batch for j in self.jobs)
        return small or self.inflight_bulk < max(1, self.max_inflight - 1)

    async def _loop(self) -> None:
        while True:
            async with self._cond:
                await self._cond.wait_for(self._ready)
            if self.max_wait_s and self.queued < self.max_batch:
                await asyncio.sleep(self.max_wait_s)
            async with self._cond:
                batch = self._take()
            if not batch:
                continue
            bulk = all(len(j.queries) > self.max_batch for j, _, _ in batch)
            self.inflight += 1
            self.inflight_bulk += bulk
            asyncio.create_task(self._run(batch, bulk))

    def _take(self) -> list[tuple[Job, int, int]]:
        """Water-fill ``max_batch`` over the waiting small jobs, smallest first, or when there are none over the
        large ones (batches never mix the two: a small request never waits for a slice of a large one)."""
        now = asyncio.get_running_loop().time()
        for j in [j for j in self.jobs if j.deadline is not None and j.deadline <= now]:
            self.jobs.remove(j)
            self.queued -= j.left
            j.fail(RpcError(E_DEADLINE, "deadline passed while the request waited in the coordinator's queue"))
        small = [j for j in self.jobs if len(j.queries) <= self.max_batch]
        if not small and self.inflight_bulk >= max(1, self.max_inflight - 1):
            return []
        jobs, space, batch = sorted(small or self.jobs, key=lambda j: j.left), self.max_batch, []
        for i, j in enumerate(jobs):
            if space <= 0:
                break
            take = min(j.left, max(1, space // (len(jobs) - i)))
            batch.append((j, j.sent, j.sent + take))
            j.sent += take
            space -= take
            self.queued -= take
            if j.left == 0:
                self.jobs.remove(j)
        return batch

    async def _run(self, batch: list, bulk: bool) -> None:
        try:
            await self.run(batch)
        except Exception as e:  # noqa: BLE001 - every job of the batch gets the error
            for j, _, _ in batch:
                j.fail(e)
                if j in self.jobs:
                    self.jobs.remove(j)
                    self.queued -= j.left
        finally:
            async with self._cond:
                self.inflight -= 1
                self.inflight_bulk -= bulk
                self._cond.notify_all()

    @staticmethod
    def deliver(job: Job, lo: int, result) -> None:
        job.parts[lo] = result
        job.answered += len(result.ids)
        if job.answered == len(job.queries) and not job.done.done():
            job.done.set_result(None)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        for j in self.jobs:
            j.fail(RpcError(E_BUSY, "the coordinator is closing"))


def batch_deadline(batch) -> float | None:
    """The latest deadline of a batch's jobs (None if any has none): the fan-out serves them all."""
    ds = [j.deadline for j, _, _ in batch]
    return None if any(d is None for d in ds) else max(ds)
