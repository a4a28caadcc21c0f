"""Every parameter set `ScanParams` accepts emits, elaborates and simulates bit-exactly (hypothesis).

`-m sweep`: examples from the whole range (lanes up to 16, K up to 100, ids up to 64 bits), each emitted
as Verilog, built under Verilator and run for a short randomized bench (bubbles, backpressure, sparse
lane masks) against host.spec.reference. `make test`: two examples of small parameters, elaborated and
simulated with amaranth.sim on a query of random lists (a Verilator build costs a minute per drawn core,
more than the suite's budget for this test).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.spec.scan_params import ScanParams
from sim.amaranth_streams import run_core
from sim.runner import run_bench
from sim.stimulus import expected_results, random_query


def scan_params(m_max: int, lanes_max: int, k_max: int, id_max: int):
    lanes = st.sampled_from([l for l in (1, 2, 4, 8, 16) if l <= lanes_max])
    return st.builds(ScanParams, m=st.integers(4, m_max), lanes=lanes, lut_bits=st.integers(8, 16),
                     k=st.integers(1, k_max), id_bits=st.integers(16, id_max), list_bits=st.integers(1, 32))


def _bit_exact(params: ScanParams, scans: int):
    s = run_bench(params, "verilator", scans=scans, seed=params.k, waves_on_failure=False)
    assert s["params"] == params.to_dict()
    assert s["mismatches"] == 0 and s["failed"] == [] and s["errors"] == [], s
    assert s["queries"] > 0


@settings(max_examples=2, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_params(m_max=8, lanes_max=8, k_max=20, id_max=64), st.integers(0, 2**32 - 1))
def test_small_random_params_bit_exact(params, seed):
    rng = np.random.default_rng(seed)
    queries = [random_query(params, rng, nprobe=1, lengths=[int(rng.integers(0, 3 * params.lanes + params.k))])]
    got, errors = run_core(params, queries, seed=seed)
    assert errors == []
    assert [(d, i) for d, i, _ in got[0]] == expected_results(params, queries[0])
    assert [last for *_, last in got[0]] == [0] * (params.k - 1) + [1]


@pytest.mark.sweep
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_params(m_max=64, lanes_max=16, k_max=100, id_max=64))
def test_random_params_bit_exact(params):
    _bit_exact(params, scans=30)
