# amaranth: UnusedElaboratable=no
# (for test_ecp5_ram_rejects_bad_shapes and test_unknown_ram_style_is_refused: a constructor
# that raises leaves its half-built component unelaborated; every other component in this file
# is elaborated)
"""The ECP5 block RAM style of the table memory: structure of the emitted Verilog and bad arguments.
Its behaviour is checked bit-exactly by the cocotb bench (tests/hw/test_sim_scan.py, ram="ecp5")
against the DP16KD model in sim/models/."""
import json
import re

import pytest
from amaranth.hdl import Fragment

from host.cli import main
from host.spec.scan_params import ScanParams
from hw.ecp5_ram import Ecp5Ram
from hw.flow.verilog import SIM_MODELS, emit
from hw.scan_core import ScanCore
from hw.table_memory import TableMemory


@pytest.mark.parametrize("lanes,lut_bits,blocks", [(4, 16, 2), (1, 8, 1), (16, 16, 8), (8, 9, 2)])
def test_emitted_core_instantiates_registered_dp16kd(tmp_path, lanes, lut_bits, blocks):
    p = ScanParams(m=4, lanes=lanes, lut_bits=lut_bits, k=2)
    vfile, jfile = emit(p, tmp_path, "ecp5")
    text = vfile.read_text()
    # one RAM of lanes * lut_bits bits per (column, lane), 36 bits per DP16KD, all registered
    n = p.m * lanes * blocks
    ram = Ecp5Ram(width=lanes * lut_bits, depth=2)
    Fragment.get(ram, None)     # elaborate it: the component is used, not only its attribute
    assert n == p.m * lanes * ram.blocks
    assert len(re.findall(r"DP16KD #\(", text)) == n
    for param in ('.REGMODE_A("OUTREG")', '.REGMODE_B("OUTREG")', ".DATA_WIDTH_A(32'd36)", ".DATA_WIDTH_B(32'd36)"):
        assert text.count(param) == n, param
    assert json.loads(jfile.read_text())["ram"] == "ecp5"
    # the inferred core has no primitive and its own cache identity
    vfile2, jfile2 = emit(p, tmp_path / "inferred")
    assert "DP16KD" not in vfile2.read_text()
    assert json.loads(jfile2.read_text())["source_hash"] != json.loads(jfile.read_text())["source_hash"]


def test_sim_model_exists_for_ecp5():
    assert SIM_MODELS["inferred"] == ()
    (model,) = SIM_MODELS["ecp5"]
    assert "module DP16KD" in model.read_text()


@pytest.mark.parametrize("kwargs,msg", [({"width": 0, "depth": 8}, "width must be a positive int"),
                                        ({"width": 36, "depth": 513}, "depth must be in 1..512"),
                                        ({"width": 36, "depth": 0}, "depth must be in 1..512")])
def test_ecp5_ram_rejects_bad_shapes(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Ecp5Ram(**kwargs)


@pytest.mark.parametrize("cls", [TableMemory, ScanCore])
def test_unknown_ram_style_is_refused(cls):
    with pytest.raises(ValueError, match=r"ram must be one of \('inferred', 'ecp5'\), not 'xilinx'"):
        cls(params=ScanParams(), ram="xilinx")


def test_cli_verilog_ram_option(tmp_path, capsys):
    assert main(["hw", "verilog", "--m", "4", "--lanes", "2", "--k", "1", "--ram", "ecp5",
                 "--out", str(tmp_path)]) == 0
    assert "DP16KD" in (tmp_path / "anole_scan.v").read_text()
    with pytest.raises(SystemExit):
        main(["hw", "verilog", "--ram", "bram", "--out", str(tmp_path)])
    assert "invalid choice: 'bram'" in capsys.readouterr().err
