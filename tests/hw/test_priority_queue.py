import random

import pytest
from amaranth.sim import Simulator

from hw.priority_queue import InsertionQueue


@pytest.mark.parametrize("depth", [1, 4, 10])
def test_keeps_smallest_sorted_back_to_back_and_flushes(depth):
    """A key (with valid) on `key` in cycle t is in the cells from cycle t+2; flushes at random,
    keys in every cycle, including right after a flush; compared with a sorted-list model."""
    kb = 12
    dut = InsertionQueue(depth=depth, key_bits=kb)
    ones = (1 << kb) - 1
    rng = random.Random(depth)
    ops = [(rng.randrange(64), rng.random() < 0.7, rng.random() < 0.06) for _ in range(300)]
    ops[5] = (ones, True, False)                       # a valid all-ones key is the same as empty

    async def tb(ctx):
        model, pending = [], None                      # pending: the key registered last cycle
        for key, valid, flush in ops:
            ctx.set(dut.key, key)
            ctx.set(dut.valid, valid)
            ctx.set(dut.flush, flush)
            await ctx.tick()
            if flush:
                model = []
            elif pending is not None:
                model = sorted(model + [pending])[:depth]
            pending = key if valid else None
            assert list(ctx.get(dut.cells)) == model + [ones] * (depth - len(model))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be in 1..100, not 101"):
        InsertionQueue(depth=101, key_bits=8)
