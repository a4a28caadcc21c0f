import random

import pytest
from amaranth.sim import Simulator

from hw.priority_queue import InsertionQueue


@pytest.mark.parametrize("depth", [1, 4, 10])
def test_keeps_smallest_sorted_and_flushes(depth):
    dut = InsertionQueue(depth=depth, key_bits=12)
    ones = (1 << 12) - 1
    rng = random.Random(depth)
    keys = [rng.randrange(64) for _ in range(50)]      # many duplicates

    async def tb(ctx):
        for n, key in enumerate(keys):
            ctx.set(dut.key, key)
            await ctx.tick()
            ctx.set(dut.key, ones)
            want = sorted(keys[:n + 1])[:depth]
            assert ctx.get(dut.cells)[:len(want)] == want
        ctx.set(dut.flush, 1)
        await ctx.tick()
        ctx.set(dut.flush, 0)
        assert list(ctx.get(dut.cells)) == [ones] * depth

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be in 1..100, not 101"):
        InsertionQueue(depth=101, key_bits=8)
