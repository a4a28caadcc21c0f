import argparse
import subprocess
import sys

import numpy as np
import pytest

from host.cli import build_parser, main
from host.index.datasets import recall_at_k, write_vecs


def _leaf_commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_commands(sub, prefix + (name,))
            return
    yield prefix


def test_every_subcommand_has_help(capsys):
    commands = list(_leaf_commands(build_parser()))
    assert ("index", "build") in commands and ("search",) in commands
    for cmd in commands:
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--help"])
        assert e.value.code == 0
        assert "usage: anole" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "host.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "search" in out.stdout


@pytest.mark.parametrize("extra, message", [
    (["--nprobe", "65"], "nprobe must be in 1..64"),
    (["--backend", "gpu"], "unknown backend 'gpu'"),
    (["--k", "0"], "--k must be in 1..100"),
    (["--k", "101"], "--k must be in 1..100"),
    (["--lut-bits", "20"], "lut_bits must be in 8..16"),
])
def test_search_bad_arguments(small_index, tmp_path, capsys, extra, message):
    q = tmp_path / "q.fvecs"
    write_vecs(q, np.zeros((2, 32), np.float32))
    rc = main(["search", "--index", str(small_index.path), "--queries", str(q), "--backend", "reference", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


def test_search_wrong_dimension_and_missing_index(small_index, tmp_path, capsys):
    q = tmp_path / "q.fvecs"
    write_vecs(q, np.zeros((2, 16), np.float32))
    assert main(["search", "--index", str(small_index.path), "--queries", str(q), "--backend", "reference"]) == 2
    assert "dimension 16, the index expects 32" in capsys.readouterr().err
    assert main(["search", "--index", str(tmp_path / "nope"), "--queries", str(q)]) == 2
    assert "no manifest.json" in capsys.readouterr().err


def test_build_and_search_end_to_end(tmp_path, capsys):
    out = tmp_path / "idx"
    assert main(["index", "build", "--synthetic", "3000", "--dim", "16", "--clusters", "30", "--nlist", "16",
                 "--m", "4", "--shards", "2", "--out", str(out)]) == 0
    res = tmp_path / "r.npz"
    assert main(["search", "--index", str(out), "--synthetic-queries", "50", "--nprobe", "16", "--k", "5",
                 "--backend", "reference", "--out", str(res)]) == 0
    text = capsys.readouterr().out
    recall = float(text.split("recall@5 vs exact: ")[1].split()[0])
    assert recall > 0.5                                         # all lists probed: only PQ error remains
    r = np.load(res)
    assert r["ids"].shape == (50, 5) and r["ids"].dtype == np.int64 and r["distances"].dtype == np.float32
    assert (np.diff(r["distances"], axis=1) >= 0).all()


def test_build_rejects_bad_m(tmp_path, capsys):
    assert main(["index", "build", "--synthetic", "3000", "--dim", "30", "--nlist", "16", "--m", "8",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not divisible by m=8" in capsys.readouterr().err


def _ann_file(path, base, queries, k=10):
    """An ann-benchmarks style .hdf5 (train, test, neighbors, distances; angular = cosine)."""
    import h5py

    from host.index.datasets import ground_truth

    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=base)
        f.create_dataset("test", data=queries)
        f.create_dataset("neighbors", data=ground_truth(base, queries, k, "cos").astype(np.int32))
        f.create_dataset("distances", data=np.zeros((len(queries), k), np.float32))
        f.attrs["distance"] = "angular"


def test_hdf5_build_and_search_with_gt(tiny_data, tmp_path, capsys):
    """ann-benchmarks input end to end: the file's 'angular' makes a cosine index; --gt reads 'neighbors'."""
    base, queries = tiny_data
    ann = tmp_path / "ann.hdf5"
    _ann_file(ann, base, queries)
    out = tmp_path / "idx"
    assert main(["index", "build", "--data", str(ann), "--nlist", "16", "--m", "4", "--shards", "2",
                 "--chunk-size", "1000", "--out", str(out)]) == 0
    assert "(cos)" in capsys.readouterr().out
    assert main(["search", "--index", str(out), "--queries", str(ann), "--gt", str(ann), "--nprobe", "16",
                 "--threads", "1"]) == 0
    text = capsys.readouterr().out
    recall = float(text.split("recall@10 vs exact: ")[1].split()[0])
    assert recall > 0.4                                       # all lists probed: only PQ4 error remains


def test_import_then_search_npy_queries(tiny_data, tmp_path, capsys):
    import faiss

    from host.index.builder import BuildConfig, build_ivfpq

    base, queries = tiny_data
    fidx = build_ivfpq(base, BuildConfig(nlist=16, m=4, metric="ip"))
    faiss.write_index(fidx, str(tmp_path / "x.faiss"))
    np.save(tmp_path / "q.npy", queries.astype(np.float64))
    assert main(["index", "import", str(tmp_path / "x.faiss"), "--shards", "2", "--out", str(tmp_path / "i")]) == 0
    assert main(["search", "--index", str(tmp_path / "i"), "--queries", str(tmp_path / "q.npy"), "--nprobe", "4",
                 "--threads", "1", "--out", str(tmp_path / "r.npz")]) == 0
    faiss.extract_index_ivf(fidx).nprobe = 4
    want_d, want_i = fidx.search(queries, 10)
    got = np.load(tmp_path / "r.npz")
    assert recall_at_k(got["ids"], want_i, 10) >= 0.99
    np.testing.assert_allclose(got["distances"][:, 0], want_d[:, 0], rtol=1e-3)


def test_bad_inputs_exit_2(tiny_data, tmp_path, capsys):
    import faiss
    import h5py

    np.save(tmp_path / "rank.npy", np.zeros((3, 4, 4), np.float32))
    with h5py.File(tmp_path / "e.hdf5", "w") as f:
        f.create_dataset("vectors", data=np.ones((2, 2)))
    faiss.write_index(faiss.IndexHNSWFlat(16, 8), str(tmp_path / "h.faiss"))
    (tmp_path / "half" / ".build").mkdir(parents=True)
    cases = [
        (["index", "build", "--data", str(tmp_path / "rank.npy"), "--out", str(tmp_path / "o")], "rank 3"),
        (["index", "build", "--data", str(tmp_path / "e.hdf5"), "--out", str(tmp_path / "o")], "no dataset 'train'"),
        (["index", "import", str(tmp_path / "h.faiss"), "--out", str(tmp_path / "o")], "IndexHNSWFlat"),
        (["index", "build", "--synthetic", "3000", "--dim", "16", "--factory", "IVF16,PQ4x4",
          "--out", str(tmp_path / "o")], "4-bit codes"),
        (["search", "--index", str(tmp_path / "half"), "--synthetic-queries", "5"], "interrupted build"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
