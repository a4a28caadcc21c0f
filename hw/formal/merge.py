"""Formal harness of `LaneMerge` (one segment): a sorted merge that loses and duplicates no key, `last`
on every K-th output, and an output stream that keeps its payload while stalled."""
from __future__ import annotations

from amaranth import Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable

from hw.merge import LaneMerge


class MergeHarness(Elaboratable):
    """Free lane cells (each lane ascending), `load` (only while not `busy`) and `o.ready`. Asserted:
    the outputs of a merge ascend; for any threshold `w` (AnyConst) the outputs below `w` number
    min(K, cells below `w` at the load), so the K outputs are the K smallest cells; `last` marks exactly
    the K-th output and nothing is offered outside a merge; `o.payload` and `o.valid` hold while
    `o.valid & ~o.ready`."""

    def __init__(self, *, lanes: int, depth: int, key_bits: int):
        self.lanes, self.depth, self.key_bits = lanes, depth, key_bits

    def elaborate(self, platform):
        m = Module()
        n, k, kb = self.lanes, self.depth, self.key_bits
        m.submodules.dut = dut = LaneMerge(lanes=n, depth=k, key_bits=kb)
        cells = [[AnySeq(kb) for _ in range(k)] for _ in range(n)]
        load, ready, w = AnySeq(1), AnySeq(1), AnyConst(kb)
        o = dut.o
        m.d.comb += [Assume(~ResetSignal()), dut.load.eq(load), o.ready.eq(ready),
                     Assume(~(load & dut.busy))]
        for lane, keys in zip(dut.cells, cells):
            m.d.comb += [lane[i].eq(x) for i, x in enumerate(keys)]
            m.d.comb += [Assume(a <= b) for a, b in zip(keys, keys[1:])]

        merging = Signal()
        emitted = Signal(range(k + 1))       # outputs of this merge so far
        below_out = Signal(range(k + 1))     # of which below w
        below_in = Signal(range(n * k + 1))  # cells below w at the load
        prev = Signal(kb)
        take = o.valid & o.ready
        key = o.payload.key
        with m.If(load):
            m.d.sync += [merging.eq(1), emitted.eq(0), below_out.eq(0), prev.eq(0),
                         below_in.eq(sum((x < w for keys in cells for x in keys), start=Signal(range(n * k + 1))))]
        with m.Elif(take):
            m.d.sync += [emitted.eq(emitted + 1), below_out.eq(below_out + (key < w)), prev.eq(key),
                         merging.eq(~o.payload.last)]

        stalled, held = Signal(), Signal.like(o.payload)
        m.d.sync += [stalled.eq(o.valid & ~o.ready), held.eq(o.payload)]
        with m.If(~Initial()):
            m.d.comb += Assert(~o.valid | merging)
            with m.If(stalled):
                m.d.comb += [Assert(o.valid), Assert(o.payload.as_value() == held.as_value())]
            with m.If(take):
                m.d.comb += [Assert(key >= prev), Assert(o.payload.last == (emitted == k - 1))]
                with m.If(o.payload.last):
                    m.d.comb += Assert(below_out + (key < w) == Mux(below_in < k, below_in, k))
        return m
