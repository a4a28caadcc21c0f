"""AXI4 write master that stores the core's results as 16-byte records (`ResultWriter`)."""
from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.layout import RESULT_BYTES
from host.spec.scan_params import ScanParams
from hw.axi_reader import check_data_bits, members, write_members
from hw.interface import result_layout


class ResultWriter(wiring.Component):
    """Writes each result accepted on `i` as one record (id u64, dist u32, 0 u32) at increasing addresses.

    A pulse on `start` sets the address to `base` and clears `queries`, the count of queries whose
    K-th result (`last`) has been written and acknowledged on B. One record per write burst
    (`RESULT_BYTES / word bytes` beats, or one beat with `wstrb` selecting the record's 16 bytes of a
    wider word), one burst outstanding: about 4 + beats cycles per record. `busy` is high from the
    accepted result to its B response.
    """

    def __init__(self, *, params: ScanParams, data_bits: int = 128, addr_bits: int = 64):
        check_data_bits(data_bits)
        self.params, self.data_bits, self.addr_bits = params, data_bits, addr_bits
        super().__init__({
            **members(write_members(addr_bits, data_bits)),
            "i": In(stream.Signature(result_layout(params))),
            "start": In(1), "base": In(addr_bits), "queries": Out(32), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        B = self.data_bits // 8
        lb = B.bit_length() - 1
        rec_bits = 8 * RESULT_BYTES
        beats = max(RESULT_BYTES // B, 1)
        addr = Signal(self.addr_bits)
        record = Signal(rec_bits)
        last = Signal()
        beat = Signal(range(beats + 1))
        res = self.i.payload

        m.d.comb += [self.awaddr.eq(Cat(Const(0, lb), addr[lb:])), self.awlen.eq(beats - 1),
                     self.awsize.eq(lb), self.awburst.eq(1), self.awcache.eq(0b0011),
                     self.awprot.eq(0), self.awid.eq(0), self.wlast.eq(beat == beats - 1)]
        if B > RESULT_BYTES:
            offset = addr[:lb]
            m.d.comb += [self.wdata.eq(record << (offset * 8)),
                         self.wstrb.eq(Const((1 << RESULT_BYTES) - 1, B) << offset)]
        else:
            m.d.comb += [self.wdata.eq(record.word_select(beat, self.data_bits)),
                         self.wstrb.eq((1 << B) - 1)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [record.eq(Cat(res.id, Const(0, 64 - len(res.id)), res.dist,
                                               Const(0, rec_bits - 64 - len(res.dist)))),
                                 last.eq(res.last), beat.eq(0)]
                    m.next = "AW"
            with m.State("AW"):
                m.d.comb += self.awvalid.eq(1)
                with m.If(self.awready):
                    m.next = "W"
            with m.State("W"):
                m.d.comb += self.wvalid.eq(1)
                with m.If(self.wready):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(self.wlast):
                        m.next = "B"
            with m.State("B"):
                m.d.comb += self.bready.eq(1)
                with m.If(self.bvalid):
                    m.d.sync += addr.eq(addr + RESULT_BYTES)
                    with m.If(last):
                        m.d.sync += self.queries.eq(self.queries + 1)
                    m.next = "IDLE"
        m.d.comb += self.busy.eq(~self.i.ready)
        with m.If(self.start):
            m.d.sync += [addr.eq(self.base), self.queries.eq(0)]
        return m
