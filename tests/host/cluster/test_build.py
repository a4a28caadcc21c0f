"""The distributed build on a local Ray cluster writes the same bytes as the single-machine build."""
import pytest

from host.cli import main
from host.cluster.build import build_index_ray
from host.index.builder import BuildConfig
from host.index.datasets import synthetic_clustered, write_vecs
from host.index.stream_build import build_index

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]


def _files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("m,train_size", [(8, 3000), (4, 0)])   # m=4: PQ encodes through BLAS (d/m >= 16)
def test_distributed_build_is_byte_identical(ray_cluster, tmp_path, m, train_size):
    x = synthetic_clustered(9_000, 64, seed=2, clusters=40)
    cfg = BuildConfig(nlist=32, m=m, seed=5, train_size=train_size, chunk_size=2_500)   # 4 chunks, the last short
    local = build_index(x, cfg, tmp_path / "local", nshards=2)
    dist = build_index_ray(x, cfg, tmp_path / "ray", nshards=2)
    assert _files(dist) == _files(local)


def test_cli_build_with_ray_reads_the_file_on_the_workers(ray_cluster, tmp_path, capsys):
    write_vecs(tmp_path / "base.fvecs", synthetic_clustered(5_000, 32, seed=3, clusters=20))
    common = ["index", "build", "--data", str(tmp_path / "base.fvecs"), "--nlist", "16", "--m", "8", "--shards", "2"]
    assert main(common + ["--out", str(tmp_path / "local")]) == 0
    assert main(common + ["--out", str(tmp_path / "ray"), "--ray"]) == 0     # auto: this process's cluster
    assert "index: 5000 vectors" in capsys.readouterr().out
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
