"""`anole board csim|header|selftest`."""
from __future__ import annotations

from host.cli import main


def test_board_csim_and_header(tmp_path, capsys):
    assert main(["board", "csim", "m=4", "lanes=1", "k=1", "lut_bits=8", "--queries", "10"]) == 0
    assert "0 mismatches" in capsys.readouterr().out
    assert main(["board", "header", "m=8", "k=7", "--out", str(tmp_path / "scan_config.h")]) == 0
    assert "#define ANOLE_K 7\n" in (tmp_path / "scan_config.h").read_text()
    assert main(["board", "header", "m=3", "--out", str(tmp_path / "x.h")]) == 2
    assert "m must be in 4..64" in capsys.readouterr().err


def test_board_selftest(small_index, capsys):
    args = ["board", "selftest", "--index", str(small_index.path), "--shard", "1", "--queries", "16"]
    assert main([*args, "--device", "csim", "--params", "k=20", "lanes=2"]) == 0
    assert "bit-exact with the reference" in capsys.readouterr().out
    assert main([*args, "--device", "csim", "--cus", "3", "--params", "k=20", "lanes=2"]) == 0
    out = capsys.readouterr().out
    assert "on 3 compute unit(s)" in out and "bit-exact with the reference" in out
    assert main([*args, "--backend", "xrt"]) == 2
    err = capsys.readouterr().err
    assert "anole: error:" in err and "pyxrt" in err and "device='csim'" in err
