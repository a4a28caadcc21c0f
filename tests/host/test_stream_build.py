import errno
import json

import numpy as np
import pytest

from host.index import stream_build
from host.index.builder import BuildConfig, build_ivfpq
from host.index.index_dir import export_index, load_index
from host.index.sources import SyntheticSource
from host.spec.errors import IndexFormatError, InputError

CFG = BuildConfig(nlist=16, m=4, chunk_size=700, train_size=2000)


@pytest.fixture(scope="module")
def src():
    return SyntheticSource(3_000, 16, seed=3, clusters=30)


@pytest.fixture(scope="module")
def in_memory(src, tmp_path_factory):
    """The in-memory build (faiss add) exported over 3 shards: what the out-of-core build must reproduce."""
    return load_index(export_index(build_ivfpq(src[0:3000], CFG), tmp_path_factory.mktemp("mem"), nshards=3))


def _same(a, b):
    for sa, sb in zip(a.shards, b.shards, strict=True):
        for f in ("offsets", "codes", "ids"):
            np.testing.assert_array_equal(getattr(sa, f), getattr(sb, f))
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.codebooks, b.codebooks)


def test_out_of_core_equals_in_memory_build(src, in_memory, tmp_path):
    out = stream_build.build_index(src, CFG, tmp_path / "ooc", nshards=3)
    assert not (out / ".build").exists()
    _same(load_index(out), in_memory)
    assert load_index(out).faiss_index().ntotal == 3000           # index.faiss is filled from the shards


def test_interrupted_build_never_loads_and_resumes(src, in_memory, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    real, calls = stream_build.store_chunk, []

    def dying(work, i, *a):
        calls.append(i)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(work, i, *a)
    monkeypatch.setattr(stream_build, "store_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        stream_build.build_index(src, CFG, out, nshards=3)
    with pytest.raises(IndexFormatError, match="interrupted build"):
        load_index(out)
    calls.clear()
    monkeypatch.setattr(stream_build, "store_chunk", lambda work, i, *a: (calls.append(i), real(work, i, *a)))
    stream_build.build_index(src, CFG, out, nshards=3)
    assert calls == [2, 3, 4]                                     # chunks 0 and 1 were kept, the rest redone
    _same(load_index(out), in_memory)


def test_full_disk_mid_build_is_one_clear_error_then_resumes(src, in_memory, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    real_replace, count = stream_build.os.replace, [0]

    def full(a, b):
        count[0] += 1
        if count[0] == 7:                                        # inside the second chunk
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(a, b)
    monkeypatch.setattr(stream_build.os, "replace", full)
    with pytest.raises(InputError, match="disk full while writing"):
        stream_build.build_index(src, CFG, out, nshards=3)
    assert not (out / "manifest.json").exists()
    monkeypatch.setattr(stream_build.os, "replace", real_replace)
    stream_build.build_index(src, CFG, out, nshards=3)
    _same(load_index(out), in_memory)


def test_refusals(src, tmp_path, monkeypatch):
    out = tmp_path / "idx"
    (out / ".build").mkdir(parents=True)
    (out / ".build" / "state.json").write_text(json.dumps({"n": 1}))
    with pytest.raises(InputError, match="interrupted build with other settings"):
        stream_build.build_index(src, CFG, out, nshards=3)
    monkeypatch.setattr(stream_build.writer, "_free_bytes", lambda path: 1000)
    with pytest.raises(InputError, match="GiB of disk"):
        stream_build.build_index(src, CFG, tmp_path / "other", nshards=1)
