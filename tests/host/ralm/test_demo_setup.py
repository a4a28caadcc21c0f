"""The demo's retrieval settings: the datastores' tuned.json unless a flag says otherwise."""
import pytest

from host.ralm.demo_setup import DemoConfig, apply_tuned
from host.ralm.tuned import Tuned, save_tuned
from host.spec.errors import InputError


@pytest.fixture
def stores(tmp_path):
    knn, chunks = tmp_path / "knn", tmp_path / "chunks"
    knn.mkdir(), chunks.mkdir()
    save_tuned(knn, Tuned(kind="knn", nprobe=16, lut_bits=12, k=64, lam=0.4, temperature=5.0))
    save_tuned(chunks, Tuned(kind="chunks", nprobe=4, lut_bits=16, k=1))
    return knn, chunks


def test_tuned_values_fill_what_flags_leave_open(stores):
    cfg, tk, tc = apply_tuned(DemoConfig(), *stores)
    assert (cfg.nprobe, cfg.k, cfg.lam, cfg.knn_temperature, cfg.lut_bits) == (16, 64, 0.4, 5.0, 12)
    assert (cfg.chunk_nprobe, cfg.chunk_lut_bits) == (4, 16)
    assert (tk.kind, tc.kind) == ("knn", "chunks")


def test_flags_win(stores):
    cfg, *_ = apply_tuned(DemoConfig(nprobe=2, k=8, lam=0.0, knn_temperature=1.0, lut_bits=8), *stores)
    assert (cfg.nprobe, cfg.k, cfg.lam, cfg.knn_temperature, cfg.lut_bits) == (2, 8, 0.0, 1.0, 8)
    assert (cfg.chunk_nprobe, cfg.chunk_lut_bits) == (2, 8)
    assert apply_tuned(DemoConfig(backend="verilator"), *stores)[0].k == 10


def test_missing_tuned_is_an_error(stores, tmp_path):
    with pytest.raises(InputError, match="tuned.json"):
        apply_tuned(DemoConfig(), stores[0], tmp_path)
