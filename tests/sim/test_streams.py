"""HandshakeMonitor on recorded valid/ready/payload traces (plain objects with `.value`, as cocotb handles)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from sim.streams import HandshakeMonitor


def run(trace):
    """trace: [(valid, ready, payload)] per cycle -> the monitor's report."""
    valid, ready, payload = SimpleNamespace(value=0), SimpleNamespace(value=0), SimpleNamespace(value=0)
    mon = HandshakeMonitor("x", valid, ready, [payload])
    for v, r, p in trace:
        valid.value, ready.value, payload.value = v, r, p
        mon.sample()
    return mon.report()


def test_held_beat_passes():
    r = run([(1, 0, 5), (1, 0, 5), (1, 1, 5), (0, 0, 9), (1, 1, 7), (1, 1, 8)])
    assert r["violations"] == 0 and r["beats"] == 3 and r["stalls"] == 2


@pytest.mark.parametrize("trace, words", [
    ([(1, 0, 5), (0, 0, 5)], "valid fell"),
    ([(1, 0, 5), (1, 1, 6)], "payload changed"),
    ([(1, 1, 5), (1, 0, 6), (1, 0, 7)], "payload changed"),
])
def test_violations_are_reported(trace, words):
    r = run(trace)
    assert r["violations"] == 1 and words in r["messages"][0]


def test_reset_forgets_a_pending_beat():
    valid, ready, payload = SimpleNamespace(value=1), SimpleNamespace(value=0), SimpleNamespace(value=3)
    mon = HandshakeMonitor("x", valid, ready, [payload])
    mon.sample()
    mon.reset()
    valid.value = 0
    mon.sample()
    assert mon.violations == 0
