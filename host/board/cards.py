"""Projected scan rate per card: compute units x lanes x clock against the memory channels that feed them.

Each compute unit streams one code beat (lanes codes of m bytes) and one id beat (lanes ids) per cycle when
nothing stalls it. A unit's codes and ids come from its own channel(s) (hls/link/<card>.cfg, the overlay's
high-performance ports), so a unit runs at min(lanes * f, channel bytes/s / bytes per code); the card at
`cus` times that. Bandwidths are the channels' peak figures from the vendors' data sheets; sustained rates
are lower (DDR4 ~80 %, HBM ~90 % with long bursts), so the projection is an upper bound (untested on a card).
"""
from __future__ import annotations

from dataclasses import dataclass

from host.spec.layout import KernelLayout
from host.spec.scan_params import ScanParams


@dataclass(frozen=True, slots=True)
class Card:
    """A target: compute units, kernel clock, and the peak bytes/s reaching one unit's codes and ids."""

    name: str
    cus: int
    clock_hz: float
    codes_bps: float          # bandwidth of the channel (or port) feeding a unit's codes
    ids_bps: float            # ... its ids (the same channel when shared)
    shared: bool              # codes and ids share one channel

    def memory_bound(self, params: ScanParams) -> float:
        """Codes per second one unit's channels can deliver (m code bytes and one id word per code)."""
        id_bytes = KernelLayout(params).id_word_bits // 8
        if self.shared:
            return self.codes_bps / (params.m + id_bytes)
        return min(self.codes_bps / params.m, self.ids_bps / id_bytes)

    def unit_rate(self, params: ScanParams) -> float:
        """Codes per second one unit can scan: the compute bound (lanes per cycle) or the memory bound."""
        return min(params.lanes * self.clock_hz, self.memory_bound(params))

    def rate(self, params: ScanParams) -> float:
        """Codes per second of the whole card."""
        return self.cus * self.unit_rate(params)


CARDS = {
    # 4 DDR4-2400 x64 channels, 19.2 GB/s each; one unit per channel, codes and ids on it (hls/link/u250.cfg)
    "u250": Card("u250", 4, 300e6, 19.2e9, 19.2e9, True),
    # 32 HBM2 pseudo-channels, 460 GB/s / 32 = 14.4 GB/s each; a pseudo-channel per AXI port (hls/link/u55c.cfg)
    "u55c": Card("u55c", 8, 300e6, 14.4e9, 14.4e9, False),
    # Zynq-7000 HP port, 64 bits at the 100 MHz kernel clock (DDR3 x16, 2.1 GB/s, is shared by the four ports)
    "pynq-z2": Card("pynq-z2", 1, 100e6, 0.8e9, 0.8e9, False),
    # Zynq UltraScale+ HP port, 128 bits at the 200 MHz kernel clock (PS DDR4 x64, 19.2 GB/s, shared)
    "zcu104": Card("zcu104", 1, 200e6, 3.2e9, 3.2e9, False),
}
