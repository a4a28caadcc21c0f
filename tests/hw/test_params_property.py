"""Every parameter set `ScanParams` accepts emits, elaborates and simulates bit-exactly (hypothesis).

Each drawn set is emitted as Verilog, built under Verilator and run for a short randomized bench
(bubbles, backpressure, sparse lane masks) against host.spec.reference. In `make test`: one example
from small parameters (derandomized, so the same core is drawn and its build is reused); `-m sweep`:
examples from the whole range (lanes up to 16, K up to 100, ids up to 64 bits).
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest

from host.spec.scan_params import ScanParams
from sim.runner import run_bench


def scan_params(m_max: int, lanes_max: int, k_max: int, id_max: int):
    lanes = st.sampled_from([l for l in (1, 2, 4, 8, 16) if l <= lanes_max])
    return st.builds(ScanParams, m=st.integers(4, m_max), lanes=lanes, lut_bits=st.integers(8, 16),
                     k=st.integers(1, k_max), id_bits=st.integers(16, id_max), list_bits=st.integers(1, 32))


def _bit_exact(params: ScanParams, scans: int):
    s = run_bench(params, "verilator", scans=scans, seed=params.k, waves_on_failure=False)
    assert s["params"] == params.to_dict()
    assert s["mismatches"] == 0 and s["failed"] == [] and s["errors"] == [], s
    assert s["queries"] > 0


@settings(max_examples=1, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scan_params(m_max=8, lanes_max=4, k_max=12, id_max=24))
def test_small_random_params_bit_exact(params):
    _bit_exact(params, scans=30)


@pytest.mark.sweep
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(scan_params(m_max=64, lanes_max=16, k_max=100, id_max=64))
def test_random_params_bit_exact(params):
    _bit_exact(params, scans=30)
