"""cocotb benches of the emitted `anole_scan`, run through cocotb_tools.runner (sim/runner.py).

Default run: the headline set (m=16, lanes=4, k=10), a K=100 set and a narrow odd-m set under Verilator with
2,000 randomized scans each (10,000 under `-m sweep`, which adds run length, not new kinds of stimulus), full-rate throughput on lists of 1,000..2,000 codes, protocol
misuse, and the headline set under Icarus; the headline set again with the ECP5 block RAM style (DP16KD
instances, simulated with sim/models/DP16KD.v) under both simulators, the design `anole hw report`
places and routes; all five protocol-error flags, a reset in the middle of queries and the wall-clock limit.
Every run's handshake monitors (table, i, o) must be clean, and the randomized runs must fill their
coverage points (sim/scan/coverage.py). `-m sweep` runs the full parameter sweep (the 16-lane and
64-bit-id K=100 sets of issue 22 included) and checks that a failing seed records waves.
"""
from pathlib import Path

import pytest

from host.spec.scan_params import ScanParams
from sim.runner import run_bench

HEADLINE = ScanParams(m=16, lanes=4, lut_bits=16, k=10)
WIDE = ScanParams(m=8, lanes=8, lut_bits=8, k=100, id_bits=24)
NARROW = ScanParams(m=5, lanes=2, lut_bits=9, k=3, id_bits=16, list_bits=8)
CI_SETS = [HEADLINE, WIDE, NARROW]
SWEEP_SETS = [
    ScanParams(m=4, lanes=1, lut_bits=8, k=1, id_bits=16),
    ScanParams(m=8, lanes=16, lut_bits=8, k=100, id_bits=24),
    ScanParams(m=64, lanes=2, lut_bits=16, k=100),
    ScanParams(m=32, lanes=8, lut_bits=10, k=50),
    ScanParams(m=12, lanes=16, lut_bits=16, k=20, id_bits=40),
    ScanParams(m=16, lanes=4, lut_bits=16, k=100),
    ScanParams(m=7, lanes=4, lut_bits=12, k=17, id_bits=64, list_bits=32),
    ScanParams(m=16, lanes=16, lut_bits=16, k=100),             # 16 x 100 x 52-bit merge cells (issue 22)
    ScanParams(m=16, lanes=8, lut_bits=16, k=100, id_bits=64),  # 8 x 100 x 84 bits
]


def _ids(p):
    return f"m{p.m}-l{p.lanes}-b{p.lut_bits}-k{p.k}"


RANDOM_COVERAGE = ("lane_mask", "list_length", "candidates_vs_k", "queue_reach", "last_handshake")
"""Cover points a randomized run of a few hundred scans must fill completely (sim/scan/coverage.py)."""
ALL_FLAGS = {"codes_outside_list", "end_outside_list", "list_mismatch", "nested_list", "query_inside_list"}


def _check(summary, scans_min=0):
    assert summary["mismatches"] == 0, summary
    assert summary["errors"] == [], summary
    assert summary["failed"] == [], summary["failed"]
    assert all(m["violations"] == 0 and m["beats"] > 0 for m in summary["monitors"].values()), summary["monitors"]
    assert summary["scans"] >= scans_min, summary


CI_SCANS, LONG_SCANS = 2_000, 10_000


@pytest.mark.slow
@pytest.mark.parametrize("params", CI_SETS, ids=_ids)
def test_verilator_randomized_scans(params):
    s = run_bench(params, "verilator", scans=CI_SCANS, seed=1)
    _check(s, CI_SCANS)
    if params.k <= 16:          # K = 100: reaching the last of 10 segments of a lane takes longer lists
        assert all(s["coverage"][point] == 100.0 for point in RANDOM_COVERAGE), s["coverage"]


@pytest.mark.sweep
@pytest.mark.parametrize("params", CI_SETS, ids=_ids)
def test_verilator_randomized_10k_scans(params):
    _check(run_bench(params, "verilator", scans=LONG_SCANS, seed=1), LONG_SCANS)


@pytest.mark.slow
@pytest.mark.parametrize("params", [HEADLINE, WIDE], ids=_ids)
def test_verilator_throughput_long_lists(params):
    s = run_bench(params, "verilator", scans=64, seed=2, mode="throughput")
    _check(s)
    assert s["codes_per_cycle"] >= 0.95 * params.lanes, s


def test_verilator_protocol_misuse_is_flagged():
    s = run_bench(HEADLINE, "verilator", testcase="test_protocol_errors", seed=3)
    assert s["mismatches"] == 0 and s["failed"] == []
    assert set(s["errors"]) == ALL_FLAGS and s["coverage"]["error_flag"] == 100.0


def test_verilator_reset_mid_query():
    """Two resets with a query outstanding; the queries after them are bit-exact, the flags clear."""
    s = run_bench(NARROW, "verilator", testcase="test_reset_mid_query", scans=100, seed=6)
    _check(s)
    assert s["coverage"]["reset_mid_query"] == 100.0


def test_verilator_timeout_stops_the_run():
    """A wall-clock limit ends a long run early with a summary that says so (no waves rerun)."""
    s = run_bench(NARROW, "verilator", scans=1_000_000, seed=7, timeout_s=0.5)
    assert s["timed_out"] and s["failed"] == ["timed out"] and "waves" not in s
    assert s["mismatches"] == 0 and 0 < s["scans"] < 1_000_000


@pytest.mark.slow
def test_icarus_randomized():
    _check(run_bench(HEADLINE, "icarus", scans=600, seed=4), 600)


def test_icarus_protocol_misuse_is_flagged():
    s = run_bench(NARROW, "icarus", testcase="test_protocol_errors", seed=5)
    assert set(s["errors"]) == ALL_FLAGS


@pytest.mark.slow
def test_verilator_ecp5_ram_randomized_and_throughput():
    _check(run_bench(HEADLINE, "verilator", scans=CI_SCANS, seed=9, ram="ecp5"), CI_SCANS)
    s = run_bench(HEADLINE, "verilator", scans=64, seed=10, mode="throughput", ram="ecp5")
    _check(s)
    assert s["ram"] == "ecp5" and s["codes_per_cycle"] >= 0.95 * HEADLINE.lanes, s


@pytest.mark.slow
def test_icarus_ecp5_ram_randomized():
    _check(run_bench(ScanParams(m=6, lanes=8, lut_bits=12, k=5), "icarus", scans=300, seed=11, ram="ecp5"), 300)


@pytest.mark.sweep
def test_verilator_ecp5_ram_10k_scans():
    _check(run_bench(HEADLINE, "verilator", scans=LONG_SCANS, seed=9, ram="ecp5"), LONG_SCANS)


@pytest.mark.sweep
@pytest.mark.parametrize("params", SWEEP_SETS, ids=_ids)
def test_sweep_verilator(params):
    _check(run_bench(params, "verilator", scans=LONG_SCANS, seed=6), LONG_SCANS)
    s = run_bench(params, "verilator", scans=64, seed=7, mode="throughput")
    _check(s)
    assert s["codes_per_cycle"] >= 0.95 * params.lanes, s


@pytest.mark.sweep
@pytest.mark.parametrize("params", SWEEP_SETS[:3], ids=_ids)
def test_sweep_icarus(params):
    _check(run_bench(params, "icarus", scans=1000, seed=8), 1000)


def test_cli_sim_scan_json(capsys):
    import json

    from host.cli import main

    rc = main(["sim", "scan", "--m", "16", "--lanes", "4", "--lut-bits", "16", "--k", "10",
               "--scans", "50", "--seed", "9", "--simulator", "verilator", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    assert out["scans"] >= 50 and out["mismatches"] == 0
    assert {"codes", "cycles", "codes_per_cycle"} <= set(out)


@pytest.mark.sweep
def test_failing_seed_records_waves():
    """A run that fails (here: one expected result corrupted in the bench) is rerun with FST waves."""
    s = run_bench(NARROW, "verilator", scans=20, seed=8, inject_mismatch=True)
    assert s["mismatches"] >= 1 and s["waves"], s
    assert all(p.endswith((".fst", ".vcd")) and Path(p).stat().st_size > 0 for p in s["waves"]), s["waves"]
