"""Handshake monitors (sim/streams.py) on every AXI4 / AXI4-Lite channel of the board kernel `anole_scan_axi`."""
from __future__ import annotations

from hw.axi_control import lite_members
from hw.axi_reader import read_members, write_members
from sim.streams import HandshakeMonitor


def axi_channels(spec: dict) -> dict[str, list[str]]:
    """{channel (ar, aw, r, w, b): its payload fields} of an AXI member spec such as `read_members`."""
    out: dict[str, list[str]] = {}
    for sig in spec:
        ch = sig[:2] if sig[:2] in ("ar", "aw") else sig[0]
        if sig[len(ch):] not in ("valid", "ready"):
            out.setdefault(ch, []).append(sig[len(ch):])
    return out


def axi_monitors(dut, desc: dict) -> list[HandshakeMonitor]:
    """A handshake monitor per channel of `s_axi_control` and of every `m_axi_<bundle>` the kernel has."""
    mons = [HandshakeMonitor.of_axi_channel(dut, "s_axi_control", ch, fields)
            for ch, fields in axi_channels(lite_members()).items()]
    spec = axi_channels({**read_members(64, 32), **write_members(64, 32)})
    for bundle in desc["m_axi"]:
        mons += [HandshakeMonitor.of_axi_channel(dut, f"m_axi_{bundle}", ch, fields)
                 for ch, fields in spec.items() if hasattr(dut, f"m_axi_{bundle}_{ch}valid")]
    return mons
