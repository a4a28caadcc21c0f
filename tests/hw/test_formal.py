"""Formal properties of the scan core's blocks, proved with SymbiYosys (hw/formal/, hw/flow/formal.py).

CI: the insertion queue (K = 4, 4-bit keys) and the table bank control (4 beats) by k-induction, i.e. for
every cycle; the lane merge (2 lanes, K = 3, 3-bit keys) by BMC for 14 cycles from reset (a load, its
first output 3 cycles later, its 3 outputs with up to 8 cycles of backpressure; k-induction does not
close on the merge without invariants on its internal state). 1 to 4 s per proof on a quiet machine.
`-m sweep`: larger instances.
"""
from __future__ import annotations

import pytest

from hw.flow.formal import FormalToolMissing, prove, sby_command
from hw.formal.banks import BanksHarness
from hw.formal.merge import MergeHarness
from hw.formal.queue import QueueHarness

try:
    sby_command()
except FormalToolMissing as e:
    pytest.skip(str(e), allow_module_level=True)


def _prove(harness, name, tmp_path, mode, depth):
    r = prove(harness, name, tmp_path, mode=mode, depth=depth)
    assert r["status"] == "PASS", r["log"]
    return r


def test_queue_holds_the_k_smallest_in_order(tmp_path):
    _prove(QueueHarness(depth=4, key_bits=4), "queue", tmp_path, "prove", 8)


def test_merge_sorted_complete_last_and_stable(tmp_path):
    _prove(MergeHarness(lanes=2, depth=3, key_bits=3), "merge", tmp_path, "bmc", 14)


def test_a_proof_out_of_time_is_stopped(tmp_path):
    """The wall-clock limit ends sby and its solver (a process group), with status TIMEOUT."""
    r = prove(MergeHarness(lanes=3, depth=4, key_bits=3), "slow", tmp_path, mode="bmc", depth=30, timeout_s=1)
    assert r["status"] == "TIMEOUT" and r["seconds"] < 60


def test_bound_table_bank_is_never_written(tmp_path):
    _prove(BanksHarness(beats=4), "banks", tmp_path, "prove", 12)


@pytest.mark.sweep
@pytest.mark.parametrize("name, harness, mode, depth", [
    ("queue8", QueueHarness(depth=8, key_bits=5), "prove", 12),
    ("merge_l3", MergeHarness(lanes=3, depth=4, key_bits=3), "bmc", 11),
    ("merge_l2_deep", MergeHarness(lanes=2, depth=3, key_bits=3), "bmc", 20),
    ("banks16", BanksHarness(beats=16, list_bits=3), "prove", 40),
])
def test_larger_instances(name, harness, mode, depth, tmp_path):
    _prove(harness, name, tmp_path, mode, depth)
