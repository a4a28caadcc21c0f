import random

import pytest
from amaranth import Module, Signal
from amaranth.sim import Simulator

from hw import split_compare


@pytest.mark.parametrize("width", [1, 2, 7, 12, 52])
@pytest.mark.parametrize("or_equal", [False, True])
def test_registered_parts_rebuild_the_comparison(width, or_equal):
    """less(parts(a, b)) taken through a register equals a < b (a <= b), zero when not enabled."""
    a, b, en = Signal(width), Signal(width), Signal()
    word = Signal(3)
    m = Module()
    m.d.sync += word.eq(split_compare.parts(a, b, or_equal=or_equal, enable=en))
    rng = random.Random(width)
    top = (1 << width) - 1
    cases = [(rng.randrange(top + 1), rng.randrange(top + 1), rng.random() < 0.8) for _ in range(300)]
    cases += [(x, x, True) for x in (0, top, top >> 1)] + [(0, top, True), (top, 0, True)]
    # equal high halves, differing low halves (and the reverse) exercise the split
    half = (width + 1) // 2
    cases += [((5 << half) | 1, (5 << half) | 2, True), ((5 << half) | 2, (5 << half) | 1, True)] if width > 4 else []

    async def bench(ctx):
        for x, y, e in cases:
            ctx.set(a, x)
            ctx.set(b, y)
            ctx.set(en, e)
            await ctx.tick()
            got = ctx.get(split_compare.less(word))
            want = e and (x <= y if or_equal else x < y)
            assert got == want, (x, y, e)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_widths_must_match():
    with pytest.raises(ValueError, match="one width, not 4 and 5"):
        split_compare.parts(Signal(4), Signal(5))
