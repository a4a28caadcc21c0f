"""The distributed build on a local Ray cluster writes the same bytes as the single-machine build."""
import faiss
import numpy as np
import pytest

from host.cluster.build import build_ivfpq_ray
from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered, write_vecs
from host.index.index_dir import export_index

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def _files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("m,train_size", [(8, 3000), (4, 0)])   # m=4: PQ encodes through BLAS (d/m >= 16)
def test_distributed_build_is_byte_identical(ray_cluster, tmp_path, m, train_size):
    x = synthetic_clustered(9_000, 64, seed=2, clusters=40)
    cfg = BuildConfig(nlist=32, m=m, seed=5, train_size=train_size)
    local = export_index(build_ivfpq(x, cfg), tmp_path / "local", nshards=2)
    dist = build_ivfpq_ray(x, cfg, chunk=2_500, progress=False)        # 4 chunks, the last one short
    assert dist.ntotal == len(x)
    assert _files(export_index(dist, tmp_path / "ray", nshards=2)) == _files(local)


def test_build_reads_a_file_on_every_host(ray_cluster, tmp_path):
    x = synthetic_clustered(5_000, 32, seed=3, clusters=20)
    write_vecs(tmp_path / "base.fvecs", x)
    cfg = BuildConfig(nlist=16, m=8, seed=1)
    got = build_ivfpq_ray(tmp_path / "base.fvecs", cfg, chunk=2_000, progress=False)
    want = build_ivfpq(x, cfg)
    np.testing.assert_array_equal(faiss.serialize_index(got), faiss.serialize_index(want))
