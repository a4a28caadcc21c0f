"""host.net.timeouts: the Python 3.10 stand-in for asyncio.timeout gives asyncio.timeout's outcomes."""
from __future__ import annotations

import asyncio

from host.net.timeouts import _timeout, within, within_at


def outcomes(limit) -> list[str]:
    """What each scenario ends in under the context manager ``limit``."""
    async def guarded(coro_fn, delay):
        try:
            async with limit(delay):
                return str(await coro_fn())
        except asyncio.TimeoutError:
            return "timeout"

    async def queue_item(put_after: float):
        q: asyncio.Queue = asyncio.Queue()
        asyncio.get_running_loop().call_later(put_after, q.put_nowait, 7)
        return await q.get()

    async def main():
        out = [await guarded(lambda: asyncio.sleep(5), 0.01),
               await guarded(lambda: asyncio.sleep(0, "done"), 1.0),
               await guarded(lambda: asyncio.sleep(0.01, "unlimited"), None),
               await guarded(lambda: queue_item(0.0), 0.0),
               await guarded(lambda: queue_item(0.0), 0.5),
               await guarded(lambda: queue_item(0.5), 0.01)]
        await asyncio.sleep(0.02)                         # an expired or finished limit cancels nothing later
        task = asyncio.ensure_future(guarded(lambda: asyncio.sleep(5), 5))
        await asyncio.sleep(0.01)
        task.cancel()                                     # a cancel from outside stays a cancel
        try:
            await task
        except asyncio.CancelledError:
            out.append("cancelled")
        return out

    return asyncio.run(main())


def test_same_outcomes_as_asyncio_timeout():
    want = outcomes(asyncio.timeout)
    assert want == ["timeout", "done", "unlimited", "timeout", "7", "timeout", "cancelled"]
    assert outcomes(_timeout) == want
    assert within is asyncio.timeout                      # Python 3.11+: the real one is used


def test_within_at_is_within_from_now(monkeypatch):
    """The 3.10 path of within_at (an absolute event-loop time) gives the same outcomes as asyncio.timeout_at."""
    def relative(at_fn):
        def limit(delay):
            return at_fn(None if delay is None else asyncio.get_running_loop().time() + delay)
        return limit
    want = outcomes(relative(asyncio.timeout_at))
    assert outcomes(relative(within_at)) == want
    monkeypatch.delattr(asyncio, "timeout_at")
    assert outcomes(relative(within_at)) == want
