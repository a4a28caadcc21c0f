import numpy as np
import pytest

from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec, Op
from sim.amaranth_streams import run_beats, run_core
from sim.stimulus import expected_results, query_beats, random_query


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
