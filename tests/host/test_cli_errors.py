"""Bad options and paths of `anole hw`, `anole sim scan` and `anole board csim`: one line, exit code 2."""
from __future__ import annotations

import pytest

from host.cli import main


def _one_line_error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anole: error: ") and "\n" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, err


def test_hw_verilog_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    _one_line_error(capsys, ["hw", "verilog", "--m", "4", "--lanes", "1", "--k", "1", "--out", str(f)], str(f))


def test_hw_verilog_out_unwritable(capsys):
    _one_line_error(capsys, ["hw", "verilog", "--m", "4", "--lanes", "1", "--k", "1", "--out", "/proc/anole/x"],
                    "/proc/anole")


def test_hw_verilog_bad_params(capsys):
    _one_line_error(capsys, ["hw", "verilog", "--lanes", "3", "--out", "x"], "lanes")


@pytest.mark.parametrize("extra, words", [
    (["--bubble", "1.5"], ["--bubble", "[0, 1)"]), (["--bubble", "-1"], ["--bubble"]),
    (["--bubble", "1"], ["--bubble"]), (["--stall", "nan"], ["--stall", "nan"]),
    (["--stall", "inf"], ["--stall"]), (["--scans", "0"], ["--scans"]),
    (["--timeout-s", "0"], ["--timeout-s"]), (["--timeout-s", "nan"], ["--timeout-s"]),
])
def test_sim_scan_bad_options(capsys, extra, words):
    _one_line_error(capsys, ["sim", "scan", *extra], *words)


def test_sim_scan_missing_simulator(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    _one_line_error(capsys, ["sim", "scan", "--simulator", "icarus", "--scans", "1"], "iverilog not found")


@pytest.mark.parametrize("extra, words", [
    (["--nprobe", "-1"], ["--nprobe"]), (["--nprobe", "0"], ["--nprobe"]), (["--queries", "0"], ["--queries"]),
    (["m=64", "lanes=16"], ["4096"]),
])
def test_board_csim_bad_options(capsys, extra, words):
    _one_line_error(capsys, ["board", "csim", *extra], *words)
