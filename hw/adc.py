"""ADC lanes: the distance of `lanes` codes per cycle as the sum of their m table entries."""
from __future__ import annotations

import math

from amaranth import Module, Signal
from amaranth.hdl import Shape, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.scan_params import ScanParams


def adder_levels(m: int) -> int:
    """Pipeline depth of the adder tree over m entries: one register per level."""
    return max(1, math.ceil(math.log2(m)))


class AdcLanes(wiring.Component):
    """Sums `entries[l][0..m-1]` for every lane l in a pipelined binary adder tree.

    Timing contract: II = 1, latency `adder_levels(m)` cycles, no backpressure (`always_ready`).
    The `tag` payload (any shape, e.g. ids and lane-valid mask) travels alongside with the same
    latency. `dist[l]` is `params.dist_bits` wide, so the sum never overflows.
    """

    def __init__(self, *, params: ScanParams, tag_shape=unsigned(1)):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        Shape.cast(tag_shape)
        self.params = params
        self.tag_shape = tag_shape
        p = params
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "entries": data.ArrayLayout(data.ArrayLayout(unsigned(p.lut_bits), p.m), p.lanes),
                "tag": tag_shape}), always_ready=True)),
            "o": Out(stream.Signature(data.StructLayout({
                "dist": data.ArrayLayout(unsigned(p.dist_bits), p.lanes),
                "tag": tag_shape}), always_ready=True)),
        })

    @property
    def latency(self) -> int:
        return adder_levels(self.params.m)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        valid, tag = self.i.valid, self.i.payload.tag
        level = [[self.i.payload.entries[l][j] for j in range(p.m)] for l in range(p.lanes)]
        width = p.lut_bits
        for depth in range(self.latency):
            width += 1
            nxt = []
            for l in range(p.lanes):
                terms = level[l]
                regs = []
                for k in range(0, len(terms), 2):
                    r = Signal(width, name=f"s{depth}_l{l}_{k // 2}")
                    m.d.sync += r.eq(terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k])
                    regs.append(r)
                nxt.append(regs)
            level = nxt
            v = Signal(name=f"valid{depth}")
            t = Signal(self.tag_shape, name=f"tag{depth}")
            m.d.sync += [v.eq(valid), t.eq(tag)]
            valid, tag = v, t
        for l in range(p.lanes):
            assert len(level[l]) == 1
            m.d.comb += self.o.payload.dist[l].eq(level[l][0])
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.tag.eq(tag)]
        return m
