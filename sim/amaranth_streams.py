"""amaranth.sim helpers: drive and collect `lib.stream` interfaces with random bubbles; run a `ScanCore`."""
from __future__ import annotations

import random

from amaranth.sim import Simulator

from hw.interface import BeatCodec
from hw.scan_core import ScanCore
from sim.stimulus import query_beats


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


def run_beats(params, tbeats, ibeats, nresults, *, seed=0, bubble=0.3, stall=0.3):
    """Drive raw beats through the core; returns (results [(dist, id, last)], error flag names)."""
    dut = ScanCore(params=params)
    codec = BeatCodec(params)
    rng = random.Random(seed)
    results, errors = [], []

    async def table_tb(ctx):
        await put_all(ctx, dut.table, tbeats, rng, bubble)

    async def i_tb(ctx):
        await put_all(ctx, dut.i, ibeats, rng, bubble)

    async def o_tb(ctx):
        raw = await get_n(ctx, dut.o, nresults, rng, stall)
        results.extend(codec.unpack_result(v) for v in raw)
        for _ in range(4):
            await ctx.tick()
        errors.extend(codec.unpack_error(ctx.get(dut.error.as_value())))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(table_tb, background=True)
    sim.add_testbench(i_tb, background=True)
    sim.add_testbench(o_tb)
    sim.run()
    return results, errors


def run_core(params, queries, *, extra_i=(), **kw):
    """Run `queries` (sim.stimulus.Query) through a ScanCore; returns (K results per query, error flag names)."""
    codec = BeatCodec(params)
    tbeats, ibeats = [], list(extra_i)
    for q in queries:
        t, i = query_beats(codec, q)
        tbeats += t
        ibeats += i
    results, errors = run_beats(params, tbeats, ibeats, params.k * len(queries), **kw)
    return [results[n * params.k:(n + 1) * params.k] for n in range(len(queries))], errors
