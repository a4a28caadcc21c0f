"""cocotb bench of the board kernel `anole_scan_axi` (sim/axi_kernel), run through cocotb_tools.runner.

Each set runs every launch of sim/axi_kernel/case.py (a real index image laid out by
host.spec.layout; real queries, edge cases, nq = 0, nprobe = 0) with random pauses on all AXI
channels; results must equal host.spec.reference.scan_query bit for bit, every AXI channel keeps the
handshake rule (sim/streams.py), and an R beat answered SLVERR in one launch sets AXI_ERROR for it
alone. The throughput test runs the long-list case without pauses behind 50 cycles of read latency and
checks the scan rate.
"""
import pytest

from host.spec.scan_params import ScanParams
from sim.axi_kernel.runner import run

pytest.importorskip("cocotbext.axi", reason="the AXI kernel bench needs cocotbext-axi")

SETS = {
    "m8-l4-k10-w128": (ScanParams(m=8, lanes=4, lut_bits=16, k=10), 128),
    "m6-l2-k50-id24-w64": (ScanParams(m=6, lanes=2, lut_bits=12, k=50, id_bits=24), 64),
}
SLOW_SETS = {
    "m12-l8-k17-id40-w256": (ScanParams(m=12, lanes=8, lut_bits=10, k=17, id_bits=40), 256),
}


def _check(s, slverr_launch=-1):
    assert s["mismatches"] == 0, s
    assert s["violations"] == [] and all(m["beats"] for name, m in s["monitors"].items()
                                         if name.endswith(("_ar", "_r", "control_aw", "control_w", "control_b"))), s
    assert s["axi_error"] == [1 if i == slverr_launch else 0 for i in range(len(s["launches"]))], s
    assert s["config_ok"] and s["config_vld"] == [1, 0], s
    assert [launch["nq"] for launch in s["launches"]] == [6, 2, 0, 1], s
    assert s["codes"] > 1000, s


@pytest.mark.parametrize("name", SETS)
def test_verilator_axi_kernel_bit_exact(name):
    params, data_bits = SETS[name]
    _check(run(params, data_bits, "verilator", seed=1, pause=0.3, slverr_launch=1), slverr_launch=1)


@pytest.mark.sweep
@pytest.mark.parametrize("name", SLOW_SETS)
def test_verilator_axi_kernel_wide_bus(name):
    """A 256-bit bus (results written with byte strobes), unaligned 96-byte code beats, 40-bit ids."""
    params, data_bits = SLOW_SETS[name]
    _check(run(params, data_bits, "verilator", seed=2, pause=0.5))


@pytest.mark.sweep
def test_icarus_axi_kernel():
    """Icarus (about 2 min): the same launches, cycle for cycle the same as under Verilator."""
    params, data_bits = SETS["m8-l4-k10-w128"]
    _check(run(params, data_bits, "icarus", seed=3, pause=0.3))


@pytest.mark.parametrize("data_bits,floor", [
    (128, 0.45),                                           # a 32-byte code beat is 2 words: at most 0.5
    pytest.param(256, 0.9, marks=pytest.mark.sweep),       # one word per code beat
])
def test_verilator_axi_kernel_throughput(data_bits, floor):
    """Long lists (4 x 4 of 1,000-2,000 codes) from a memory with 50 cycles of read latency: the readers
    keep enough bursts in flight and queue the next lists' ranges, so the scan runs at the bus's rate."""
    s = run(ScanParams(m=8, lanes=4, lut_bits=16, k=10), data_bits, "verilator", seed=0, mode="throughput",
            latency=50)
    assert s["mismatches"] == 0 and s["config_ok"], s
    assert s["codes"] > 16_000 and s["codes_per_cycle_per_lane"] >= floor, s
