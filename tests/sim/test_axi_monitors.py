"""The AXI channel split of sim/axi_kernel/monitors.py."""
from hw.axi_control import lite_members
from hw.axi_reader import read_members, write_members
from sim.axi_kernel.monitors import axi_channels


def test_every_payload_signal_lands_in_its_channel():
    lite = axi_channels(lite_members())
    assert lite == {"aw": ["addr"], "w": ["data", "strb"], "b": ["resp"], "ar": ["addr"], "r": ["data", "resp"]}
    full = axi_channels({**read_members(64, 64), **write_members(64, 64)})
    assert full["ar"] == ["addr", "len", "size", "burst", "id", "cache", "prot"]
    assert full["r"] == ["data", "last", "resp", "id"] and full["b"] == ["resp", "id"]
    assert full["w"] == ["data", "strb", "last"] and full["aw"][0] == "addr"
