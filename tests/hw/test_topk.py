import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from host.spec.reference import select_topk
from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec
from hw.topk import TopK
from sim.amaranth_streams import get_n


@pytest.mark.parametrize("params", [ScanParams(m=4, lanes=4, lut_bits=8, k=5, id_bits=16),
                                    ScanParams(m=4, lanes=1, lut_bits=8, k=1, id_bits=16),
                                    ScanParams(m=4, lanes=2, lut_bits=8, k=7, id_bits=16),
                                    # a segmented queue (10 + 10 + 3 cells) and its staggered copy
                                    ScanParams(m=4, lanes=2, lut_bits=8, k=23, id_bits=16)], ids=str)
def test_topk_of_each_query_in_order(params):
    dut = TopK(params=params)
    codec = BeatCodec(params)
    rng = np.random.default_rng(0)
    prng = random.Random(0)
    queries = []
    for n in range(6):
        cycles = [0, 1, 3, 20][n % 4]
        dist = rng.integers(0, 6, (cycles, params.lanes))          # many ties, broken by id
        ids = rng.permutation(1000)[: cycles * params.lanes].reshape(cycles, params.lanes)
        valid = rng.integers(0, 2, (cycles, params.lanes))
        queries.append((dist, ids, valid))
    got = []

    async def drive(ctx):
        for n, (dist, ids, valid) in enumerate(queries):
            for t in range(dist.shape[0]):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.valid, int(sum(int(v) << l for l, v in enumerate(valid[t]))))
                for l in range(params.lanes):
                    ctx.set(dut.i.payload.dist[l], int(dist[t, l]))
                    ctx.set(dut.i.payload.id[l], int(ids[t, l]))
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.valid, 0)
            ctx.set(dut.i.payload.flush, 1)
            await ctx.tick()
            ctx.set(dut.i.payload.flush, 0)
            ctx.set(dut.i.valid, 0)
            if n + 1 < len(queries):
                await ctx.tick().repeat(2)      # the flush reaches the merge (busy) 2 cycles later
                await ctx.tick().until(~dut.busy)

    async def collect(ctx):
        raw = await get_n(ctx, dut.o, params.k * len(queries), prng, 0.3)
        got.extend(codec.unpack_result(v) for v in raw)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive, background=True)
    sim.add_testbench(collect)
    sim.run()
    for n, (dist, ids, valid) in enumerate(queries):
        sel = valid.astype(bool)
        want_d, want_i = select_topk(dist[sel], ids[sel], params)
        res = got[n * params.k:(n + 1) * params.k]
        assert [d for d, _, _ in res] == want_d.tolist()
        assert [i for _, i, _ in res] == [int(x) & params.max_id for x in want_i]
        assert [last for *_, last in res] == [0] * (params.k - 1) + [1]
