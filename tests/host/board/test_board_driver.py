"""KernelDriver over the virtual board (HLS C model behind the register map) vs the reference backend."""
from __future__ import annotations

import numpy as np
import pytest

from host.backends import make_backend
from host.backends.reference_backend import ReferenceBackend
from host.board.csim_device import HlsCsimDevice
from host.board.driver import KernelDriver
from host.spec import reference, regmap
from host.spec.errors import BoardError, InputError
from host.spec.scan_params import ScanParams


@pytest.fixture(scope="module")
def request_data(small_index, small_data):
    _, queries = small_data
    queries = queries[:40]
    return queries, small_index.coarse_search(queries, 8)


@pytest.mark.parametrize("backend", ["pynq", "xrt"])
@pytest.mark.parametrize("params", [dict(k=10, lanes=4), dict(k=100, lanes=8, lut_bits=12)], ids=["k10", "k100"])
def test_virtual_board_matches_reference(backend, params, small_index, request_data):
    """Every shard through the pynq/xrt driver on the virtual board: ids and distances bit-exact."""
    queries, lists = request_data
    p = ScanParams(m=small_index.m, **params)
    for shard in small_index.shards:
        want = ReferenceBackend(small_index, shard, p).search(queries, lists)
        b = make_backend(backend, small_index, shard, p, device="csim", max_table_bytes=1 << 20)
        try:
            got = b.search(queries, lists)
            assert b.driver.launches >= 2          # 40 queries split over several launches
        finally:
            b.close()
        np.testing.assert_array_equal(got.ids, want.ids)
        np.testing.assert_array_equal(got.dist, want.dist)
        np.testing.assert_array_equal(got.scale, want.scale)


def test_driver_edge_cases(small_index):
    """Empty lists, K > candidates, max table values: the driver path equals host.spec.reference.scan_query."""
    p = ScanParams(m=small_index.m, k=100, lanes=4)
    shard = small_index.shards[0]
    rng = np.random.default_rng(0)
    small = np.argsort(shard.list_sizes())[:4]
    lists = np.stack([small, rng.integers(0, small_index.nlist, 4), np.full(4, small[0])])
    qt = rng.integers(0, p.lut_max, (3, 4, p.m, 256), dtype=np.uint16, endpoint=True)
    qt[1] = p.lut_max
    with HlsCsimDevice(p) as dev:
        drv = KernelDriver(dev, p, shard)
        dist, ids = drv.scan(qt, lists)
    for q in range(3):
        want = reference.scan_query(p, qt[q], [shard.list(int(c)) for c in lists[q]])
        np.testing.assert_array_equal(dist[q], want[0])
        np.testing.assert_array_equal(ids[q], want[1])


def test_mismatched_bitstream_is_refused(small_index):
    """A kernel built for other parameters is caught by the config register after the first launch."""
    shard = small_index.shards[0]
    built = ScanParams(m=small_index.m, k=10)
    dev = HlsCsimDevice(built)
    drv = KernelDriver(dev, ScanParams(m=small_index.m, k=10, lut_bits=12), shard)
    with pytest.raises(BoardError, match="built for"):
        drv.scan(np.zeros((1, 1, built.m, 256), np.uint16), np.zeros((1, 1), np.int64))


@pytest.mark.parametrize("bits,channel", [(regmap.AXI_ERROR_READ, r"read \(codes, ids, tables, lists\)"),
                                          (regmap.AXI_ERROR_WRITE, r"write \(results\)"),
                                          (3, r"read \(.*\) and write \(results\)")], ids=["read", "write", "both"])
def test_axi_error_fails_that_launch_only(bits, channel, small_index, axi_fault):
    """One unit's launch ends with axi_error set (and scrambled results): the batch fails with one line naming
    the channel and the fix; the next batch on the same units is exact again."""
    p = ScanParams(m=small_index.m, k=10, lanes=4)
    shard = small_index.shards[0]
    units = [HlsCsimDevice(p, busy_reads=1) for _ in range(2)]
    axi_fault(units[1], bits)
    drv = KernelDriver(units, p, shard)
    lists = np.stack([np.flatnonzero(drv.owner == u)[:3] for u in (0, 1)], axis=1)      # [3, 2]: both units
    qt = np.random.default_rng(1).integers(0, p.lut_max, (3, 2, p.m, 256), dtype=np.uint16, endpoint=True)
    with pytest.raises(BoardError, match=f"^csim: the kernel's AXI {channel} got SLVERR/DECERR .*results are "
                                         f"discarded: check the buffer placement.*memory bank") as e:
        drv.scan(qt, lists)
    assert "\n" not in str(e.value)
    dist, ids = drv.scan(qt, lists)
    assert [u.runs for u in units] == [2, 2]
    for q in range(3):
        want = reference.scan_query(p, qt[q], [shard.list(int(c)) for c in lists[q]])
        np.testing.assert_array_equal(dist[q], want[0])
        np.testing.assert_array_equal(ids[q], want[1])


def test_missing_sync_reads_stale_memory(small_index):
    """The software board keeps host and device copies apart: skipping sync_to_device changes results."""
    p = ScanParams(m=small_index.m)
    dev = HlsCsimDevice(p)
    buf = dev.alloc((4,), np.uint32)
    buf.array[:] = [1, 2, 3, 4]
    assert dev.memory.device_bytes(buf.physical_address)[:16].view(np.uint32).tolist() == [0, 0, 0, 0]
    buf.sync_to_device()
    assert dev.memory.device_bytes(buf.physical_address)[:16].view(np.uint32).tolist() == [1, 2, 3, 4]


def test_bad_descriptor_is_refused(small_index):
    p = ScanParams(m=small_index.m)
    shard = small_index.shards[0]
    dev = HlsCsimDevice(p, busy_reads=0)
    drv = KernelDriver(dev, p, shard)
    drv.scan(np.zeros((1, 1, p.m, 256), np.uint16), np.zeros((1, 1), np.int64))     # allocates buffers
    drv.units[0]._bufs["lists"].array[0] = np.uint64(1 << 31)                               # beat far outside
    drv.units[0]._bufs["lists"].sync_to_device()
    dev.write_reg(regmap.ARG_OFFSETS["nq"], 1)
    with pytest.raises(BoardError, match="descriptor"):
        dev.write_reg(regmap.CTRL, regmap.AP_START)
    with pytest.raises(InputError, match="list ids"):
        drv.scan(np.zeros((1, 1, p.m, 256), np.uint16), np.full((1, 1), small_index.nlist))


@pytest.mark.parametrize("backend,option", [("pynq", "bitstream"), ("xrt", "xclbin")])
def test_no_board_is_a_clear_error(backend, option, small_index, tmp_path):
    """Without a board (or runtime) the backends refuse with a BoardError that says what is missing."""
    bit = tmp_path / "anole.bit"
    bit.write_bytes(b"\0")
    bit.with_suffix(".hwh").write_text("<xml/>")
    p = ScanParams(m=small_index.m)
    with pytest.raises(BoardError, match="No Devices Found|pyxrt|XRT") as e:
        make_backend(backend, small_index, small_index.shards[0], p, **{option: str(bit)})
    assert "csim" in str(e.value)
    with pytest.raises(InputError, match="device must be"):
        make_backend(backend, small_index, small_index.shards[0], p, device="fpga")
