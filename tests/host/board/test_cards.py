"""Projected scan rates (host/board/cards.py) against hand-computed bounds and the table in docs/deployment.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from host.board.cards import CARDS
from host.spec.scan_params import ScanParams

DOC = Path(__file__).resolve().parents[3] / "docs/deployment.md"


def test_bounds_by_hand():
    p = ScanParams(m=16, lanes=4, id_bits=32)
    assert CARDS["u250"].unit_rate(p) == pytest.approx(19.2e9 / (16 + 4))      # DDR4 shared by codes and ids
    assert CARDS["u55c"].unit_rate(p) == pytest.approx(14.4e9 / 16)            # codes' pseudo-channel
    assert CARDS["u55c"].unit_rate(ScanParams(m=8, lanes=1)) == pytest.approx(300e6)    # compute-bound
    assert CARDS["u250"].rate(p) == pytest.approx(4 * CARDS["u250"].unit_rate(p))
    wide = ScanParams(m=16, lanes=4, id_bits=40)                                 # 8-byte ids
    assert CARDS["u250"].unit_rate(wide) == pytest.approx(19.2e9 / 24)


def test_deployment_table_matches():
    rows = re.findall(r"^\| (U250|U55C|PYNQ-Z2|ZCU104) \| (\d+) \| (\d+) \| (\d+) MHz \| ([\d.]+) / ([\d.]+) G "
                      r"codes/s .*\| ([\d.]+) G codes/s \|$", DOC.read_text(), re.M)
    assert len(rows) == 4
    for name, cus, lanes, mhz, compute, memory, card in rows:
        c = CARDS[name.lower()]
        p = ScanParams(m=16, lanes=int(lanes), id_bits=32)
        assert (c.cus, c.clock_hz) == (int(cus), int(mhz) * 1e6)
        assert float(compute) == pytest.approx(int(lanes) * c.clock_hz / 1e9)
        assert float(memory) == pytest.approx(c.memory_bound(p) / 1e9)
        assert float(card) == pytest.approx(c.rate(p) / 1e9)
