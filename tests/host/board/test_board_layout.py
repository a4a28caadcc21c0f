"""Kernel buffer layout (docs/board-interface.md): shard image, descriptors, tables, results."""
from __future__ import annotations

import numpy as np
import pytest

from host.index.index_dir import Shard
from host.spec.errors import InputError
from host.spec.layout import KernelLayout
from host.spec.scan_params import ScanParams


def make_shard(sizes, m, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    n = int(offsets[-1])
    return Shard(offsets=offsets, codes=rng.integers(0, 256, (n, m), dtype=np.uint8),
                 ids=rng.permutation(n).astype(np.int64) + 1000)


@pytest.mark.parametrize("lanes,id_bits", [(1, 32), (4, 32), (8, 64)])
def test_shard_image_round_trip(lanes, id_bits):
    p = ScanParams(m=8, lanes=lanes, id_bits=id_bits)
    shard = make_shard([0, 1, 5, 8, 0, 13], p.m)
    lay = KernelLayout(p)
    codes, ids, first = lay.shard_image(shard)
    assert codes.shape[1] == lanes * p.m and ids.dtype.itemsize == (4 if id_bits <= 32 else 8)
    flat_codes = codes.reshape(-1, p.m)
    desc = lay.descriptors(first, shard.list_sizes(), np.arange(shard.nlist)[None])[0]
    for c in range(shard.nlist):
        beat, length = int(desc[c]) & 0xFFFFFFFF, int(desc[c]) >> 32
        want_codes, want_ids = shard.list(c)
        assert length == len(want_ids)
        np.testing.assert_array_equal(flat_codes[beat * lanes: beat * lanes + length], want_codes)
        np.testing.assert_array_equal(ids[beat * lanes: beat * lanes + length], want_ids)
    assert np.all(first[1:] >= first[:-1])


def test_empty_shard_has_one_beat():
    p = ScanParams(m=4, lanes=2)
    codes, ids, first = KernelLayout(p).shard_image(make_shard([0, 0], p.m))
    assert codes.shape == (1, 8) and ids.shape == (2,) and first.tolist() == [0, 0]


def test_tables_are_transposed_and_checked():
    p = ScanParams(m=4, lut_bits=8)
    lay = KernelLayout(p)
    q = np.random.default_rng(1).integers(0, 256, (2, 3, 4, 256), dtype=np.uint16)
    t = lay.tables(q)
    assert t.shape == (2, 3, 256, 4) and t[1, 2, 17, 3] == q[1, 2, 3, 17]
    assert t.tobytes()[:2] == q[0, 0, 0, 0].astype("<u2").tobytes()
    assert t.nbytes == 6 * lay.table_bytes
    q[0, 0, 0, 0] = 256
    with pytest.raises(InputError, match="lut_bits=8"):
        lay.tables(q)


def test_results_unpack_and_config_word():
    p = ScanParams(m=16, k=3, lut_bits=16, id_bits=48)
    lay = KernelLayout(p)
    rec = np.zeros((1, 3, 16), np.uint8)
    rec[0, 0, :8] = np.array([5], "<u8").view(np.uint8)
    rec[0, 0, 8:12] = np.array([42], "<u4").view(np.uint8)
    rec[0, 1, :8] = np.array([(1 << 48) - 1], "<u8").view(np.uint8)
    rec[0, 1, 8:12] = np.array([lay.empty_dist], "<u4").view(np.uint8)
    rec[0, 2] = rec[0, 1]
    dist, ids = lay.unpack_results(rec.reshape(-1), 1)
    assert dist.tolist() == [[42, lay.empty_dist, lay.empty_dist]] and ids.tolist() == [[5, -1, -1]]
    assert lay.empty_dist == (1 << 20) - 1
    assert KernelLayout.params_from_config(lay.config_word) == {"m": 16, "lanes": 4, "lut_bits": 16, "k": 3,
                                                                "id_bits": 48}
    for extreme in (ScanParams(m=64, lanes=16, k=100, id_bits=64), ScanParams(m=4, lanes=1, k=1, id_bits=16)):
        word = KernelLayout(extreme).config_word
        assert word < 1 << 32 and KernelLayout.params_from_config(word)["k"] == extreme.k
