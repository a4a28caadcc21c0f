"""XrtDevice end to end on the pyxrt conformance stand-in (exactly the names XRT binds; C model CUs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from host.backends import make_backend
from host.backends.reference_backend import ReferenceBackend
from host.board import xrt_device
from host.spec.errors import BoardError
from host.spec.scan_params import ScanParams
from host.board import pyxrt_standin as standin
HLS = Path(__file__).resolve().parents[3] / "hls"


def public(obj) -> set[str]:
    return {n for n in vars(obj) if not n.startswith("_")}


def test_standin_exposes_exactly_the_bound_names():
    mod = standin.as_module()
    assert public(mod) == standin.BOUND[""]
    for scope, names in standin.BOUND.items():
        if scope:
            cls = getattr(mod, scope, None) or getattr(standin.xclbin, scope)
            assert public(cls) == names, scope
    assert not hasattr(mod, "ip") and not hasattr(standin.xclbin.xclbinkernel, "get_args")


@pytest.fixture
def pyxrt(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyxrt", standin.as_module())
    monkeypatch.setattr(standin.device, "_PLATFORM", standin.PLATFORMS["u250"])
    return standin


@pytest.fixture(scope="module")
def request_data(small_index, small_data):
    _, queries = small_data
    return queries[:24], small_index.coarse_search(queries[:24], 8)


@pytest.mark.parametrize("card,cus", [("u250", 4), ("u55c", 8)])
def test_xrt_backend_on_every_compute_unit(card, cus, pyxrt, small_index, request_data, tmp_path):
    """The link config's CUs each hold part of the shard in their own banks; results bit-exact."""
    pyxrt.device._PLATFORM = pyxrt.PLATFORMS[card]
    queries, lists = request_data
    p = ScanParams(m=small_index.m, k=20, lanes=4)
    xclbin = pyxrt.write_xclbin(tmp_path / "anole.xclbin", HLS / f"link/{card}.cfg", p, card)
    shard = small_index.shards[0]
    b = make_backend("xrt", small_index, shard, p, xclbin=str(xclbin))
    try:
        got = b.search(queries, lists)
        assert [d.cu for d in b.devices] == [f"anole_scan_{i + 1}" for i in range(cus)]
        assert all(u.launches == 1 for u in b.driver.units)
        banks = {d.kernel.group_id(0) for d in b.devices}
        assert len(banks) == cus                        # every unit streams codes from its own bank
    finally:
        b.close()
    want = ReferenceBackend(small_index, shard, p).search(queries, lists)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)


def test_bad_cards_and_xclbins(pyxrt, small_index, tmp_path):
    p = ScanParams(m=small_index.m)
    cfg = HLS / "link/u250.cfg"
    shard = small_index.shards[0]

    def refused(match, **options):
        with pytest.raises(BoardError, match=match) as e:
            make_backend("xrt", small_index, shard, p, **options)
        assert "\n" not in str(e.value)

    refused("xclbin=PATH")
    junk = tmp_path / "junk.xclbin"
    junk.write_bytes(b"\x00\x01")
    refused("not a loadable xclbin", xclbin=str(junk))
    other = pyxrt.write_xclbin(tmp_path / "o.xclbin", cfg, p, "u250")
    other.write_text(other.read_text().replace('"anole_scan", "num_args"', '"vadd", "num_args"'))
    refused("wrong xclbin", xclbin=str(other))
    old = pyxrt.write_xclbin(tmp_path / "old.xclbin", cfg, p, "u250", num_args=9)
    refused("9 arguments.*rebuild", xclbin=str(old))
    good = pyxrt.write_xclbin(tmp_path / "a.xclbin", cfg, p, "u250")
    refused("no Alveo card 1", xclbin=str(good), card=1)
    refused("5 compute units asked, it has 4", xclbin=str(good), cus=5)
    u55c = pyxrt.write_xclbin(tmp_path / "c.xclbin", HLS / "link/u55c.cfg", p, "u55c")
    refused("refused.*xilinx_u55c", xclbin=str(u55c))
    tiny = pyxrt.write_xclbin(tmp_path / "t.xclbin", cfg, p, "u250", bank_bytes={"DDR": 4096})
    refused("do not fit DDR.*more shards", xclbin=str(tiny))


def test_wrong_bank_is_refused_by_the_runtime(pyxrt, small_index, tmp_path):
    """A buffer in another unit's bank fails at the run, as XRT's set_arg does."""
    p = ScanParams(m=small_index.m)
    units = xrt_device.open_card(pyxrt.write_xclbin(tmp_path / "a.xclbin", HLS / "link/u250.cfg", p, "u250"))
    bufs = {n: units[1].alloc((16,), np.uint8, arg=n) for n in ("codes", "ids", "tables", "lists", "results")}
    with pytest.raises(RuntimeError, match="bank mismatch"):
        units[0].launch(bufs, 1, 1, 1.0)


def test_failed_run_is_one_line_and_the_next_works(pyxrt, small_index, request_data, tmp_path):
    """A run XRT reports in ERT_CMD_STATE_ERROR (the stand-in's CU faults once) fails that search with one line
    naming the fix; the next search on the same compute unit is bit-exact."""
    queries, lists = request_data
    p = ScanParams(m=small_index.m, k=20, lanes=4)
    xclbin = pyxrt.write_xclbin(tmp_path / "a.xclbin", HLS / "link/u250.cfg", p, "u250")
    shard = small_index.shards[0]
    b = make_backend("xrt", small_index, shard, p, xclbin=str(xclbin), cus=1)
    try:
        unit = b.devices[0].kernel._unit
        execute = unit.execute

        def fault_once(args):
            unit.execute = execute
            raise BoardError("DECERR on m_axi_gmem0")

        unit.execute = fault_once
        with pytest.raises(BoardError, match=r"^anole_scan_1: the kernel run ended in .*ERT_CMD_STATE_ERROR "
                                         r".*discarded: check the buffer placement \(memory banks") as e:
            b.search(queries, lists)
        assert "\n" not in str(e.value)
        got = b.search(queries, lists)
    finally:
        b.close()
    want = ReferenceBackend(small_index, shard, p).search(queries, lists)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.dist, want.dist)
