import argparse
import subprocess
import sys

import numpy as np
import pytest

from host.cli import build_parser, main
from host.index.datasets import write_vecs


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
