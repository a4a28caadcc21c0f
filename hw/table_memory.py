"""Ping-pong table memory: m columns x 256 entries of lut_bits, two banks."""
from __future__ import annotations

from amaranth import Cat, Module, Signal, Value
from amaranth.hdl import unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.scan_params import ScanParams
from hw.ecp5_ram import Ecp5Ram, check_ram_style
from hw.interface import CODE_BITS, table_beat_layout, table_beats
from hw.table_banks import TableBanks


class TableMemory(wiring.Component):
    """Two banks of the quantized table; one loads from `i` while the other is read by every lane.

    Load side: `i` carries `table_beats(params)` beats per table (`lanes` rows of m entries each);
    after the last beat the bank is *full* and the writer moves to the other bank. `i.ready` is low
    while both banks are full.

    Read side: `acquire` (one cycle, only while `avail`) binds the next full bank, in load order, to
    the open list; `release` frees it. Every cycle lane l looks up `addr[l][j]` in column j of the
    bound bank; `data[l][j]` is valid `LATENCY` cycles later (II = 1): memory read, two plain
    registers on the memory output (block RAM clock-to-out is slow: the first can sit right at the
    RAM, the second carries the word towards the select), then the entry select within the word.
    `avail_list` is the list id the next full bank was loaded with.

    Each column is one memory of `lanes * lut_bits`-bit words (one beat writes one word per column)
    with `lanes` read ports, so a column maps to block RAM replicated per read port. `ram` picks how:
    "inferred" (an Amaranth memory, any target) or "ecp5" (`Ecp5Ram`: DP16KD block RAMs whose
    output register takes the place of the first register on the RAM output; same latency).
    """

    LATENCY = 4

    def __init__(self, *, params: ScanParams, ram: str = "inferred"):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        self.ram = check_ram_style(ram)
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
        load, wcount, wbank, cur = self._banks(m)

        # the RAM write is registered: its enable and address fan out to every block RAM, from
        # registers of their own, off the control loop. A bank turns full when its last beat is
        # accepted, a cycle before that beat lands, but is read two cycles later at the earliest
        # (acquire, then the first CODES beat).
        wen = Signal()
        waddr = Signal(len(Cat(wcount, wbank)), reset_less=True)
        wrows = Signal.like(self.i.payload.rows, reset_less=True)
        m.d.sync += [wen.eq(load), waddr.eq(Cat(wcount, wbank))]
        with m.If(load):
            m.d.sync += wrows.eq(self.i.payload.rows)
        for j in range(self.params.m):
            self._column(m, j, cur, wen, waddr, wrows)
        return m

    def _banks(self, m: Module) -> tuple[Value, Signal, Signal, Signal]:
        """Bank control (`TableBanks`); returns (`load`: a beat is accepted, its beat count, the write
        bank, `cur`: the bank bound to the open list)."""
        m.submodules.banks = banks = TableBanks(beats=table_beats(self.params), list_bits=self.params.list_bits)
        m.d.comb += [banks.valid.eq(self.i.valid), banks.list_id.eq(self.i.payload.list), self.i.ready.eq(banks.ready),
                     banks.acquire.eq(self.acquire), banks.release.eq(self.release),
                     self.avail.eq(banks.avail), self.avail_list.eq(banks.avail_list)]
        return banks.load, banks.wcount, banks.wbank, banks.cur

    def _column(self, m: Module, j: int, cur: Signal, wen: Signal, waddr: Signal, wrows: Signal) -> None:
        """Column j: its memory (one word of `lanes` entries per beat, written from the registered
        write port) and, per lane, the read of the bound bank `cur` and the two output registers."""
        p = self.params
        nbeats = table_beats(p)
        sel_bits = (p.lanes - 1).bit_length()
        wdata = Cat(*[wrows[r][j] for r in range(p.lanes)])
        if self.ram == "inferred":
            # no read/write collision logic (yosys's bypass mux on every RAM output bit): a lane
            # reads only the bound bank, which is full, so never written, until it is released
            mem = memory.Memory(shape=unsigned(p.lanes * p.lut_bits), depth=2 * nbeats, init=[],
                                attrs={"no_rw_check": 1})
            m.submodules[f"col{j}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(waddr), wp.en.eq(wen), wp.data.eq(wdata)]
        for l in range(p.lanes):
            code = self.addr[l][j]
            raddr = Cat(code[sel_bits:], cur)
            word = Signal(p.lanes * p.lut_bits, name=f"word_l{l}_c{j}", reset_less=True)
            if self.ram == "inferred":
                rp = mem.read_port()
                word0 = Signal.like(rp.data, name=f"word0_l{l}_c{j}", reset_less=True)
                m.d.comb += rp.addr.eq(raddr)
                m.d.sync += [word0.eq(rp.data), word.eq(word0)]
            else:
                ram = Ecp5Ram(width=p.lanes * p.lut_bits, depth=2 * nbeats)
                m.submodules[f"ram_l{l}_c{j}"] = ram
                m.d.comb += [ram.wen.eq(wen), ram.waddr.eq(waddr), ram.wdata.eq(wdata),
                             ram.raddr.eq(raddr)]
                m.d.sync += word.eq(ram.rdata)
            self._select(m, l, j, code, word)

    def _select(self, m: Module, l: int, j: int, code: Value, word: Signal) -> None:
        """The entry select of lane l, column j: the code's low bits, delayed to meet `word`, pick
        `data[l][j]` out of the word (registered)."""
        p = self.params
        sel_bits = (p.lanes - 1).bit_length()
        if sel_bits:
            sel = code[:sel_bits]
            for stage in range(self.LATENCY - 1):
                nxt = Signal(sel_bits, name=f"sel{stage}_l{l}_c{j}")
                m.d.sync += nxt.eq(sel)
                sel = nxt
            m.d.sync += self.data[l][j].eq(word.word_select(sel, p.lut_bits))
        else:
            m.d.sync += self.data[l][j].eq(word)
