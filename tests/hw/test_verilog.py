import json

import pytest

from host.cli import main
from host.spec.scan_params import ScanParams
from hw.flow.verilog import emit
from hw.interface import code_beat_layout, result_layout, table_beat_layout


def test_emit_writes_top_and_port_map(tmp_path):
    p = ScanParams(m=8, lanes=2, lut_bits=12, k=4)
    vfile, jfile = emit(p, tmp_path)
    text = vfile.read_text()
    assert "module anole_scan(" in text
    meta = json.loads(jfile.read_text())
    assert meta["params"] == p.to_dict()
    ports = meta["ports"]
    assert ports["i__payload"]["width"] == code_beat_layout(p).size
    assert ports["table__payload"]["width"] == table_beat_layout(p).size
    assert ports["o__payload"]["fields"]["dist"] == {"offset": p.id_bits, "width": p.dist_bits}
    for name, port in ports.items():
        assert f"{'input' if port['dir'] == 'in' else 'output'} " in text
        assert name in text


def test_cli_verilog(tmp_path, capsys):
    assert main(["hw", "verilog", "--m", "4", "--lanes", "1", "--lut-bits", "8", "--k", "1",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "anole_scan.v").exists()
    assert json.loads((tmp_path / "anole_scan.json").read_text())["params"]["k"] == 1


@pytest.mark.parametrize("arg,value,msg", [("--m", "65", "m must be in 4..64, not 65"),
                                           ("--lanes", "3", "lanes must be a power of two, not 3"),
                                           ("--k", "101", "k must be in 1..100, not 101"),
                                           ("--lut-bits", "7", "lut_bits must be in 8..16, not 7")])
def test_cli_rejects_bad_parameters(tmp_path, capsys, arg, value, msg):
    assert main(["hw", "verilog", arg, value, "--out", str(tmp_path)]) == 2
    assert msg in capsys.readouterr().err


def test_source_hash_covers_every_hw_module_and_amaranth(monkeypatch):
    import os

    import amaranth

    from hw.flow import verilog as v
    hw = v.ROOT / "hw"
    every = {os.path.join(d, f) for d, _, files in os.walk(hw) for f in files if f.endswith(".py")}
    hashed = {str(p) for p in v.hashed_sources()}
    assert every <= hashed and str(hw / "split_compare.py") in hashed and str(hw / "formal" / "merge.py") in hashed
    p = ScanParams(m=4, lanes=1, k=1)
    before = v.source_hash(p)
    monkeypatch.setattr(amaranth, "__version__", amaranth.__version__ + "+other")
    assert v.source_hash(p) != before


def test_merge_of_16_lanes_of_100_fits_the_signal_cap():
    """16 lanes x K=100 x 86-bit keys (137,600 bits) passed Amaranth's 65,535-bit cap as one port."""
    from amaranth.hdl import Fragment

    from hw.merge import LaneMerge
    merge = LaneMerge(lanes=16, depth=100, key_bits=86)
    Fragment.get(merge, None)
    assert len(merge.cells) == 16 and all(len(c.as_value()) == 100 * 86 for c in merge.cells)
