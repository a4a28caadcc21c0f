import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec, Op
from hw.scan_core import ScanCore
from sim.amaranth_streams import get_n, put_all
from sim.stimulus import expected_results, query_beats, random_query


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
    codec = BeatCodec(params)
    tbeats, ibeats = [], list(extra_i)
    for q in queries:
        t, i = query_beats(codec, q)
        tbeats += t
        ibeats += i
    results, errors = run_beats(params, tbeats, ibeats, params.k * len(queries), **kw)
    return [results[n * params.k:(n + 1) * params.k] for n in range(len(queries))], errors


@pytest.mark.parametrize("params", [
    ScanParams(m=4, lanes=2, lut_bits=8, k=3, id_bits=16),
    ScanParams(m=5, lanes=4, lut_bits=9, k=5, id_bits=16),
    ScanParams(m=4, lanes=1, lut_bits=16, k=2, id_bits=16),
], ids=str)
def test_core_matches_reference(params):
    rng = np.random.default_rng(1)
    queries = [random_query(params, rng, max_probes=2, long_len=12) for _ in range(5)]
    got, errors = run_core(params, queries)
    assert errors == []
    for q, res in zip(queries, got):
        assert [(d, i) for d, i, _ in res] == expected_results(params, q)
        assert [last for *_, last in res] == [0] * (params.k - 1) + [1]


def test_codes_before_table_is_flagged():
    params = ScanParams(m=4, lanes=2, lut_bits=8, k=2, id_bits=16)
    codec = BeatCodec(params)
    stray = codec.code_beats(np.zeros((2, 4), np.uint8), np.array([1, 2]))
    queries = [random_query(params, np.random.default_rng(2), nprobe=1, lengths=[3])]
    got, errors = run_core(params, queries, extra_i=stray)
    assert errors == ["codes_outside_list"]
    assert [(d, i) for d, i, _ in got[0]] == expected_results(params, queries[0])


def test_list_mismatch_and_end_outside_list_are_flagged():
    params = ScanParams(m=4, lanes=2, lut_bits=8, k=2, id_bits=16)
    codec = BeatCodec(params)
    q = random_query(params, np.random.default_rng(3), nprobe=1, lengths=[2])
    q.list_ids = [5]
    _, ibeats = query_beats(codec, q)
    tbeats = codec.table_beats(q.tables[0], 6)      # loaded as list 6, opened as list 5
    results, errors = run_beats(params, tbeats, [codec.op_beat(Op.END_LIST)] + ibeats, params.k)
    assert set(errors) == {"end_outside_list", "list_mismatch"}
    assert [(d, i) for d, i, _ in results] == expected_results(params, q)
