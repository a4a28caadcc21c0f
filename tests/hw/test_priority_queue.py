# amaranth: UnusedElaboratable=no
# (for test_rejects_bad_depth: a constructor that raises leaves its half-built
# component unelaborated; every other component in this file is elaborated)
import random

import pytest
from amaranth.sim import Simulator

from hw.priority_queue import SEGMENT_DELAY, InsertionQueue


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


def test_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be in 1..100, not 101"):
        InsertionQueue(depth=101, key_bits=8)


@pytest.mark.parametrize("depth", [17, 23, 40])
def test_segmented_queue_snapshots_follow_the_flush_wave(depth):
    """A queue deeper than MAX_FLAT: keys every cycle, flushes at random (the cycle before a flush
    carries no key, the cycle of the flush and after do: the next query). Segment s, seen
    SEGMENT_DELAY * s cycles after a flush, holds its slice of the query's sorted keys."""
    kb = 10
    dut = InsertionQueue(depth=depth, key_bits=kb)
    segs = dut.segments
    assert len(segs) > 1 and sum(n for _, n in segs) == depth
    ones = (1 << kb) - 1
    rng = random.Random(depth)
    ops = []
    for q in range(8):
        n = rng.choice([0, 3, depth, 3 * depth])
        ops += [(rng.randrange(200), rng.random() < 0.8, False) for _ in range(n)]
        ops += [(rng.randrange(200), False, False), (rng.randrange(200), rng.random() < 0.8, True)]
    ops += [(0, False, False)] * (SEGMENT_DELAY * len(segs) + 2)

    async def tb(ctx):
        query, pending_checks, checked = [], [], 0
        for t, (key, valid, flush) in enumerate(ops):
            ctx.set(dut.key, key)
            ctx.set(dut.valid, valid)
            ctx.set(dut.flush, flush)
            if flush:
                full = sorted(query)[:depth]
                full += [ones] * (depth - len(full))
                pending_checks += [(t + SEGMENT_DELAY * s, s, full[a:a + n]) for s, (a, n) in enumerate(segs)]
                query = []
            cells = list(ctx.get(dut.cells))
            for due, s, want in [c for c in pending_checks if c[0] == t]:
                start, size = segs[s]
                assert cells[start:start + size] == want, (t, s)
                checked += 1
            if valid:
                query.append(key)
            await ctx.tick()
        assert checked == 8 * len(segs)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
