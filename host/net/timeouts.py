"""`within(delay)`: asyncio.timeout on Python 3.11+, the same context manager on 3.10 (PYNQ images and
Ubuntu 22.04's XRT run 3.10). Expiry raises asyncio.TimeoutError (the builtin TimeoutError from 3.11 on)."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager


@asynccontextmanager
async def _timeout(delay: float | None):
    """Cancel the current task when ``delay`` seconds pass inside the block; turn that into TimeoutError."""
    if delay is None:
        yield
        return
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    fired = []
    handle = loop.call_at(loop.time() + delay, lambda: (fired.append(True), task.cancel()))
    try:
        yield
    except asyncio.CancelledError:
        if fired:
            raise asyncio.TimeoutError from None
        raise
    finally:
        handle.cancel()


within = getattr(asyncio, "timeout", _timeout)


def within_at(when: float | None):
    """`asyncio.timeout_at(when)` (event-loop clock) on 3.11+, the same through `within` on 3.10."""
    timeout_at = getattr(asyncio, "timeout_at", None)
    if timeout_at is not None:
        return timeout_at(when)
    return _timeout(None if when is None else when - asyncio.get_running_loop().time())
