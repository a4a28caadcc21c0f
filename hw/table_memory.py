"""Ping-pong table memory: m columns x 256 entries of lut_bits, two banks."""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from host.scan_params import KSUB, ScanParams
from hw.interface import CODE_BITS, table_beat_layout, table_beats


class TableMemory(wiring.Component):
    """Two banks of the quantized table; one loads from `i` while the other is read by every lane.

    Load side: `i` carries `table_beats(params)` beats per table (`lanes` rows of m entries each);
    after the last beat the bank is *full* and the writer moves to the other bank. `i.ready` is low
    while both banks are full.

    Read side: `acquire` (one cycle, only while `avail`) binds the next full bank, in load order, to
    the open list; `release` frees it. Every cycle lane l looks up `addr[l][j]` in column j of the
    bound bank; `data[l][j]` is valid `LATENCY` cycles later (II = 1): memory read, a register right
    at the memory output (block RAM clock-to-out is slow), then the entry select within the word.
    `avail_list` is the list id the next full bank was loaded with.

    Each column is one memory of `lanes * lut_bits`-bit words (one beat writes one word per column)
    with `lanes` read ports, so a column maps to block RAM replicated per read port.
    """

    LATENCY = 3

    def __init__(self, *, params: ScanParams):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        p = params
        super().__init__({
            "i": In(stream.Signature(table_beat_layout(p))),
            "acquire": In(1),
            "release": In(1),
            "avail": Out(1),
            "avail_list": Out(p.list_bits),
            "addr": In(data.ArrayLayout(data.ArrayLayout(unsigned(CODE_BITS), p.m), p.lanes)),
            "data": Out(data.ArrayLayout(data.ArrayLayout(unsigned(p.lut_bits), p.m), p.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        nbeats = table_beats(p)
        sel_bits = (p.lanes - 1).bit_length()

        full = Signal(2)
        list_of = [Signal(p.list_bits, name=f"list_of{b}") for b in range(2)]
        wbank = Signal()
        wcount = Signal(range(nbeats))
        rbank = Signal()            # next bank to acquire
        cur = Signal()              # bank bound to the open list

        load = self.i.valid & self.i.ready
        m.d.comb += self.i.ready.eq(~full.bit_select(wbank, 1))
        with m.If(load):
            m.d.sync += wcount.eq(wcount + 1)
            with m.If(wcount == nbeats - 1):
                m.d.sync += [wcount.eq(0), wbank.eq(~wbank)]
            with m.If(wcount == 0):
                for b in range(2):
                    with m.If(wbank == b):
                        m.d.sync += list_of[b].eq(self.i.payload.list)

        m.d.comb += [self.avail.eq(full.bit_select(rbank, 1)),
                     self.avail_list.eq(Cat(*[x for x in list_of]).word_select(rbank, p.list_bits))]
        with m.If(self.acquire):
            m.d.sync += [cur.eq(rbank), rbank.eq(~rbank)]
        for b in range(2):
            set_ = load & (wbank == b) & (wcount == nbeats - 1)
            clr = self.release & (cur == b)
            with m.If(set_):
                m.d.sync += full[b].eq(1)
            with m.Elif(clr):
                m.d.sync += full[b].eq(0)

        for j in range(p.m):
            mem = memory.Memory(shape=unsigned(p.lanes * p.lut_bits), depth=2 * nbeats, init=[])
            m.submodules[f"col{j}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(Cat(wcount, wbank)), wp.en.eq(load),
                         wp.data.eq(Cat(*[self.i.payload.rows[r][j] for r in range(p.lanes)]))]
            for l in range(p.lanes):
                rp = mem.read_port()
                code = self.addr[l][j]
                m.d.comb += rp.addr.eq(Cat(code[sel_bits:], cur))
                word = Signal.like(rp.data, name=f"word_l{l}_c{j}")
                m.d.sync += word.eq(rp.data)
                if sel_bits:
                    s1 = Signal(sel_bits, name=f"sel1_l{l}_c{j}")
                    s2 = Signal(sel_bits, name=f"sel2_l{l}_c{j}")
                    m.d.sync += [s1.eq(code[:sel_bits]), s2.eq(s1)]
                    m.d.sync += self.data[l][j].eq(word.word_select(s2, p.lut_bits))
                else:
                    m.d.sync += self.data[l][j].eq(word)
        return m
