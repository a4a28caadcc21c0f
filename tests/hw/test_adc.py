import numpy as np
import pytest
from amaranth.sim import Simulator

from host.spec.scan_params import ScanParams
from hw.adc import AdcLanes


@pytest.mark.parametrize("params", [ScanParams(m=4, lanes=2, lut_bits=8), ScanParams(m=7, lanes=1, lut_bits=16),
                                    ScanParams(m=16, lanes=4, lut_bits=16)], ids=str)
def test_sums_with_fixed_latency(params):
    dut = AdcLanes(params=params, tag_shape=8)
    rng = np.random.default_rng(0)
    n = 20
    entries = rng.integers(0, params.lut_max + 1, (n, params.lanes, params.m))
    entries[0] = params.lut_max                          # the widest sum must not overflow
    got = []

    async def drive(ctx):
        for t in range(n):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.tag, t)
            for l in range(params.lanes):
                for j in range(params.m):
                    ctx.set(dut.i.payload.entries[l][j], int(entries[t, l, j]))
            await ctx.tick()
        ctx.set(dut.i.valid, 0)

    async def watch(ctx):
        for cycle in range(n + dut.latency + 2):
            if ctx.get(dut.o.valid):
                tag = ctx.get(dut.o.payload.tag)
                got.append((cycle, tag, [ctx.get(dut.o.payload.dist[l]) for l in range(params.lanes)]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(watch)
    sim.run()
    assert [tag for _, tag, _ in got] == list(range(n))
    assert all(cycle == tag + dut.latency for cycle, tag, _ in got)
    for _, tag, dist in got:
        assert dist == entries[tag].sum(axis=1).tolist()
