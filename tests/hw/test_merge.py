import random

import pytest
from amaranth.sim import Simulator

from hw.merge import LaneMerge
from sim.amaranth_streams import get_n


async def load_lanes(ctx, dut, keys):
    """Put ``keys[lane][i]`` into the queue cells and pulse ``load`` for one cycle."""
    for l, lane in enumerate(keys):
        for i, key in enumerate(lane):
            ctx.set(dut.cells[l][i], key)
    ctx.set(dut.load, 1)
    await ctx.tick()
    ctx.set(dut.load, 0)


@pytest.mark.parametrize("lanes,depth", [(1, 4), (2, 1), (4, 10), (5, 7)])
def test_merges_sorted_lanes_ascending(lanes, depth):
    kb = 10
    dut = LaneMerge(lanes=lanes, depth=depth, key_bits=kb)
    rng = random.Random(lanes * 100 + depth)
    rounds = [[sorted(rng.randrange(12) for _ in range(depth)) for _ in range(lanes)] for _ in range(4)]
    rounds.append([[(1 << kb) - 1] * depth for _ in range(lanes)])       # all empty
    got = []

    async def load(ctx):
        for r in rounds:
            await load_lanes(ctx, dut, r)
            await ctx.tick().until(~dut.busy)

    async def collect(ctx):
        raw = await get_n(ctx, dut.o, depth * len(rounds), rng, 0.4)
        got.extend((v & ((1 << kb) - 1), v >> kb) for v in raw)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(load)     # finite: it ends when the merge is idle after the last round
    sim.add_testbench(collect)
    sim.run()
    for n, r in enumerate(rounds):
        want = sorted(x for lane in r for x in lane)[:depth]
        out = got[n * depth:(n + 1) * depth]
        assert [k for k, _ in out] == want
        assert [last for _, last in out] == [0] * (depth - 1) + [1]


@pytest.mark.parametrize("lanes,depth", [(1, 1), (2, 5), (4, 10), (3, 8)])
def test_one_result_per_cycle_three_cycles_after_load(lanes, depth):
    """Under a ready sink the first key is on `o` 3 cycles after `load`, then one per cycle."""
    kb = 8
    dut = LaneMerge(lanes=lanes, depth=depth, key_bits=kb)
    rng = random.Random(depth)
    lanes_keys = [sorted(rng.randrange(20) for _ in range(depth)) for _ in range(lanes)]
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        await load_lanes(ctx, dut, lanes_keys)
        for cycle in range(1, depth + 6):
            if ctx.get(dut.o.valid):
                seen.append((cycle, ctx.get(dut.o.payload.key), ctx.get(dut.o.payload.last)))
            await ctx.tick()
        assert not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = sorted(x for lane in lanes_keys for x in lane)[:depth]
    assert [c for c, _, _ in seen] == list(range(3, 3 + depth))
    assert [key for _, key, _ in seen] == want
    assert [last for _, _, last in seen] == [0] * (depth - 1) + [1]
