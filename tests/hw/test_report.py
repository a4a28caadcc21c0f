"""`anole hw report` end to end on a tiny core: yosys synth_xilinx resources, ECP5 place & route, projection."""
import json
import shutil

import pytest

from host.cli import main

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None, reason="needs Debian yosys (make sysdeps)")


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
