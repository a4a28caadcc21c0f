"""amaranth.sim helpers: drive and collect `lib.stream` interfaces with random bubbles."""
from __future__ import annotations

import random


async def put_all(ctx, stream, beats, rng: random.Random | None = None, bubble: float = 0.0):
    """Send integer payloads in order, idling a random cycle with probability `bubble`."""
    for beat in beats:
        while rng is not None and rng.random() < bubble:
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.payload.as_value(), beat)
        ctx.set(stream.valid, 1)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def get_n(ctx, stream, n: int, rng: random.Random | None = None, stall: float = 0.0) -> list[int]:
    """Accept n payloads (as integers), refusing a cycle with probability `stall`."""
    out = []
    while len(out) < n:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(stream.ready, ready)
        *_, payload, valid = await ctx.tick().sample(stream.payload.as_value(), stream.valid)
        if ready and valid:
            out.append(payload)
    ctx.set(stream.ready, 0)
    return out
