"""Formal harness of `TableBanks`: a bank bound to an open list is never written."""
from __future__ import annotations

from amaranth import Module, ResetSignal, Signal
from amaranth.asserts import AnySeq, Initial
from amaranth.hdl import Assert, Assume, Elaboratable

from hw.table_banks import TableBanks


class BanksHarness(Elaboratable):
    """Free table beats, `acquire` (as the scan core: only while `avail` and no list is open) and `release`
    (only while a list is open). The memory write is the cycle after `load` (as `TableMemory` registers
    it): asserted, it never lands in the bound bank, and the bank an `acquire` binds is full."""

    def __init__(self, *, beats: int, list_bits: int = 2):
        self.beats, self.list_bits = beats, list_bits

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = TableBanks(beats=self.beats, list_bits=self.list_bits)
        acquire, release = AnySeq(1), AnySeq(1)
        bound = Signal()
        wen, wbank = Signal(), Signal()
        m.d.comb += [dut.valid.eq(AnySeq(1)), dut.list_id.eq(AnySeq(self.list_bits)),
                     dut.acquire.eq(acquire), dut.release.eq(release), Assume(~ResetSignal()),
                     Assume(~acquire | (dut.avail & ~bound)), Assume(~release | bound)]
        m.d.sync += [wen.eq(dut.load), wbank.eq(dut.wbank)]
        with m.If(acquire):
            m.d.sync += bound.eq(1)
        with m.Elif(release):
            m.d.sync += bound.eq(0)
        with m.If(~Initial()):
            m.d.comb += [Assert(~(wen & bound & (wbank == dut.cur))),
                         # invariants that make the proof inductive: the bound bank is full, the write
                         # bank is ready exactly when it is not full
                         Assert(~bound | dut.full.bit_select(dut.cur, 1)),
                         Assert(dut.ready == ~dut.full.bit_select(dut.wbank, 1))]
        return m
