import random

import numpy as np
from amaranth.sim import Simulator

from host.spec.scan_params import KSUB, ScanParams
from hw.interface import BeatCodec
from hw.table_memory import TableMemory
from sim.amaranth_streams import put_all


def test_ping_pong_load_and_lookup():
    params = ScanParams(m=4, lanes=4, lut_bits=12)
    dut = TableMemory(params=params)
    codec = BeatCodec(params)
    rng = np.random.default_rng(0)
    tables = rng.integers(0, params.lut_max + 1, (3, params.m, KSUB)).astype(np.uint16)
    beats = [b for n, t in enumerate(tables) for b in codec.table_beats(t, 10 + n)]
    prng = random.Random(0)

    async def load(ctx):
        await put_all(ctx, dut.i, beats, prng, 0.2)

    async def scan(ctx):
        for n, table in enumerate(tables):
            await ctx.tick().until(dut.avail)
            assert ctx.get(dut.avail_list) == 10 + n
            ctx.set(dut.acquire, 1)
            await ctx.tick()
            ctx.set(dut.acquire, 0)
            for _ in range(8):
                codes = rng.integers(0, KSUB, (params.lanes, params.m))
                for l in range(params.lanes):
                    for j in range(params.m):
                        ctx.set(dut.addr[l][j], int(codes[l, j]))
                await ctx.tick().repeat(TableMemory.LATENCY)
                for l in range(params.lanes):
                    for j in range(params.m):
                        assert ctx.get(dut.data[l][j]) == table[j, codes[l, j]]
            if n == 0:   # the second table has loaded into the other bank meanwhile; no third yet
                await ctx.tick().repeat(len(beats))
                assert ctx.get(dut.i.ready) == 0
            ctx.set(dut.release, 1)
            await ctx.tick()
            ctx.set(dut.release, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(load, background=True)
    sim.add_testbench(scan)
    sim.run()
