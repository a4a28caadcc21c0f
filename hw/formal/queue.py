"""Formal harness of `InsertionQueue` (one segment): sorted cells holding the K smallest keys inserted."""
from __future__ import annotations

from amaranth import Module, Mux, ResetSignal, Signal
from amaranth.asserts import AnyConst, AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable

from hw.priority_queue import MAX_FLAT, InsertionQueue


class QueueHarness(Elaboratable):
    """Free `key`, `valid` and `flush` (no valid key in the cycle before a flush, keys never all ones,
    the empty marker); for any threshold `w` (AnyConst) the number of cells below `w` equals
    min(K, keys below `w` inserted since the flush), counted with the queue's latency of 2 cycles
    from `key` to `cells`, and the cells are ascending. For every `w` at once, this says the cells are
    exactly the K smallest keys, in order."""

    def __init__(self, *, depth: int, key_bits: int):
        if depth > MAX_FLAT:
            raise ValueError(f"the harness covers one-segment queues (depth <= {MAX_FLAT}), not {depth}")
        self.depth, self.key_bits = depth, key_bits

    def elaborate(self, platform):
        m = Module()
        kb, k = self.key_bits, self.depth
        m.submodules.dut = q = InsertionQueue(depth=k, key_bits=kb)
        key, valid, flush = AnySeq(kb), AnySeq(1), AnySeq(1)
        w = AnyConst(kb)
        prev_valid = Signal()
        below = Signal()                 # the key of the previous cycle was valid and below w
        count = Signal(range(k + 2))     # keys below w in the cells' view, saturating at K + 1
        m.d.comb += [q.key.eq(key), q.valid.eq(valid), q.flush.eq(flush),
                     Assume(~ResetSignal()), Assume(key != (1 << kb) - 1), Assume(~(flush & prev_valid))]
        m.d.sync += [prev_valid.eq(valid), below.eq(valid & (key < w))]
        with m.If(flush):
            m.d.sync += count.eq(0)
        with m.Elif(below & (count <= k)):
            m.d.sync += count.eq(count + 1)
        cells_below = sum((c < w for c in q.cells), start=Signal(range(k + 1)))
        with m.If(~Initial()):
            m.d.comb += Assert(cells_below == Mux(count <= k, count, k))
            for a, b in zip(q.cells, list(q.cells)[1:]):
                m.d.comb += Assert(a <= b)
        return m
