"""host.serve.batcher: slices of a large request interleave with small ones; the queue is bounded."""
import asyncio

import numpy as np
import pytest

from host.backends.local_search import SearchResult
from host.net.frames import E_BUSY, E_DEADLINE, RpcError
from host.serve.batcher import FairBatcher

pytestmark = pytest.mark.timeout(30)


def _runner(log: list):
    """A fan-out stand-in: records each batch as [(job tag, lo, hi)], answers row i with id = query value."""
    async def run(batch):
        log.append([(int(j.queries[0, 0]) if len(j.queries) == 1 else -1, lo, hi) for j, lo, hi in batch])
        await asyncio.sleep(0.01)
        for j, lo, hi in batch:
            ids = j.queries[lo:hi, :1].astype(np.int64)
            FairBatcher.deliver(j, lo, SearchResult(ids=ids, dist=ids, distances=ids.astype(np.float32), timings={}))
    return run


def test_small_requests_overtake_a_large_one():
    async def main():
        log = []
        b = FairBatcher(_runner(log), max_batch=8, max_inflight=2, max_wait_s=0.0, max_queued=10_000)
        big = np.arange(200, dtype=np.float32)[:, None] + 1000
        big_job = asyncio.create_task(b.submit(big, 1, 1, None))
        await asyncio.sleep(0.015)                      # the large request is under way
        smalls = [asyncio.create_task(b.submit(np.full((1, 1), i, np.float32), 1, 1, None)) for i in range(3)]
        jobs = await asyncio.gather(big_job, *smalls)
        await b.close()
        return log, jobs

    log, jobs = asyncio.run(main())
    got = np.concatenate([jobs[0].parts[lo].ids for lo in sorted(jobs[0].parts)])[:, 0]
    np.testing.assert_array_equal(got, np.arange(200) + 1000)          # slices reassemble in order
    for i, job in enumerate(jobs[1:]):
        assert job.parts[0].ids[0, 0] == i
    first_small = min(n for n, batch in enumerate(log) if any(tag >= 0 for tag, _, _ in batch))
    assert first_small <= 3 and len(log) >= 25                         # not behind the 25 slices of the big one
    assert all(sum(hi - lo for _, lo, hi in batch) <= 8 for batch in log)


def test_bounded_queue_and_deadline_in_queue():
    async def main():
        gate = asyncio.Event()

        async def stuck(batch):
            await gate.wait()
        b = FairBatcher(stuck, max_batch=4, max_inflight=1, max_wait_s=0.0, max_queued=10)
        first = asyncio.create_task(b.submit(np.zeros((4, 1), np.float32), 1, 1, None))
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(b.submit(np.zeros((8, 1), np.float32), 1, 1,
                                              asyncio.get_running_loop().time() + 0.1))
        await asyncio.sleep(0.01)
        with pytest.raises(RpcError, match="busy") as e:
            await b.submit(np.zeros((3, 1), np.float32), 1, 1, None)
        assert e.value.code == E_BUSY
        with pytest.raises(RpcError) as e:
            await queued
        assert e.value.code == E_DEADLINE
        first.cancel()
        await b.close()
    asyncio.run(main())
