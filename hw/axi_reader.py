"""AXI4 read master that streams a byte range of memory as fixed-size items (`AxiReader`).

Also the AXI4 channel member lists used by the board kernel (`hw/axi_kernel.py`) to name its ports
the way Vitis expects them (`m_axi_<bundle>_<signal>`).
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.data import View
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

MAX_BURST = 256
"""Beats of the longest AXI4 INCR burst (`arlen` is 8 bits); `AxiReader(max_burst=...)` picks its own."""
PAGE_BYTES = 4096
"""AXI bursts must not cross a 4 KiB boundary."""


def read_members(addr_bits: int, data_bits: int) -> dict[str, tuple[str, int]]:
    """AXI4 read channels seen from the master: {signal: ("out" | "in", width)}."""
    return {"arvalid": ("out", 1), "arready": ("in", 1), "araddr": ("out", addr_bits),
            "arlen": ("out", 8), "arsize": ("out", 3), "arburst": ("out", 2), "arid": ("out", 1),
            "arcache": ("out", 4), "arprot": ("out", 3),
            "rvalid": ("in", 1), "rready": ("out", 1), "rdata": ("in", data_bits), "rlast": ("in", 1),
            "rresp": ("in", 2), "rid": ("in", 1)}


def write_members(addr_bits: int, data_bits: int) -> dict[str, tuple[str, int]]:
    """AXI4 write channels seen from the master: {signal: ("out" | "in", width)}."""
    return {"awvalid": ("out", 1), "awready": ("in", 1), "awaddr": ("out", addr_bits),
            "awlen": ("out", 8), "awsize": ("out", 3), "awburst": ("out", 2), "awid": ("out", 1),
            "awcache": ("out", 4), "awprot": ("out", 3),
            "wvalid": ("out", 1), "wready": ("in", 1), "wdata": ("out", data_bits),
            "wstrb": ("out", data_bits // 8), "wlast": ("out", 1),
            "bvalid": ("in", 1), "bready": ("out", 1), "bresp": ("in", 2), "bid": ("in", 1)}


def members(spec: dict[str, tuple[str, int]], prefix: str = "") -> dict[str, wiring.Member]:
    """Signature members of a master-side channel spec, optionally prefixed (`<prefix>_<signal>`)."""
    return {f"{prefix}_{name}" if prefix else name: (Out if d == "out" else In)(w)
            for name, (d, w) in spec.items()}


def check_data_bits(data_bits: int) -> None:
    if not isinstance(data_bits, int) or data_bits < 32 or data_bits > 1024 or data_bits & (data_bits - 1):
        raise ValueError(f"data_bits must be a power of two in 32..1024, not {data_bits!r}")


def check_burst(max_burst: int, depth: int) -> None:
    if not isinstance(max_burst, int) or not 1 <= max_burst <= MAX_BURST:
        raise ValueError(f"max_burst must be an int in 1..{MAX_BURST}, not {max_burst!r}")
    if not isinstance(depth, int) or depth < max_burst:
        raise ValueError(f"depth must be an int of at least max_burst={max_burst}, not {depth!r}")


class AxiReader(wiring.Component):
    """Streams byte ranges of memory as fixed-size items: `cmd` (addr, count) in, items on `o`.

    Each command asks for `count` items of `item_bytes` bytes starting at byte address `addr`; item `i`
    is bytes `addr + i * item_bytes ...` (little-endian, byte 0 in bits 0..7) and the items of successive
    commands follow each other on `o`. A command with `count = 0` is taken and reads nothing.

    Address channel: the range from the word holding `addr` to the word holding its last byte is read
    as INCR bursts of up to `max_burst` words of `data_bits`, never across 4 KiB. A burst is issued
    only when the R data FIFO (`depth` words) has room for all of it beside the words already asked
    for, so up to `depth / max_burst` bursts are in flight, `rready` stays high and R never stalls the
    interconnect; the next command's bursts follow the last burst of the current one without waiting
    for its data (up to `ranges` commands are in flight). AR is registered: one burst per cycle at most.

    Data: a byte gearbox (capacity `item_bytes` + one word) drops the bytes before `addr` and after
    the last item and cuts the words into items. Throughput: one word per cycle while `o` is ready (an
    item per `ceil(item_bytes / word bytes)` cycles), one idle cycle between two commands' items.
    `busy` is high while a command has items not yet accepted on `o`.
    """

    def __init__(self, *, item_bytes: int, data_bits: int = 128, addr_bits: int = 64, count_bits: int = 32,
                 max_burst: int = 64, depth: int = 256, ranges: int = 4):
        if not isinstance(item_bytes, int) or item_bytes < 1:
            raise ValueError(f"item_bytes must be a positive int, not {item_bytes!r}")
        check_data_bits(data_bits)
        check_burst(max_burst, depth)
        if not isinstance(ranges, int) or ranges < 1:
            raise ValueError(f"ranges must be a positive int, not {ranges!r}")
        self.item_bytes, self.data_bits, self.addr_bits, self.count_bits = item_bytes, data_bits, addr_bits, count_bits
        self.max_burst, self.depth, self.ranges = max_burst, depth, ranges
        super().__init__({
            **members(read_members(addr_bits, data_bits)),
            "cmd": In(stream.Signature(data.StructLayout({"addr": addr_bits, "count": count_bits}))),
            "busy": Out(1),
            "o": Out(stream.Signature(8 * item_bytes)),
        })

    @property
    def _word_count_bits(self) -> int:
        """Width of a range's word count (up to `count * item_bytes / word bytes` + 1 words)."""
        return self.count_bits + self.item_bytes.bit_length() + 1

    def elaborate(self, platform):
        m = Module()
        lb = (self.data_bits // 8).bit_length() - 1
        info_layout = data.StructLayout({"skip": lb, "items": self.count_bits, "words": self._word_count_bits})
        m.submodules.info = info = SyncFIFO(width=info_layout.size, depth=self.ranges)
        # one entry more than the credits, so that the inner memory is `depth` deep and R always has room
        m.submodules.rdata = fifo = SyncFIFOBuffered(width=self.data_bits, depth=self.depth + 1)
        addr, words_left = self._commands(m, info)
        pop = self._bursts(m, addr, words_left, fifo)
        active = self._gearbox(m, View(info_layout, info.r_data), info, fifo, pop)
        m.d.comb += self.busy.eq(active | info.r_rdy | (words_left != 0))
        return m

    def _commands(self, m: Module, info: SyncFIFO) -> tuple[Signal, Signal]:
        """Command intake: a command is taken once the previous range is all issued; its gearbox info
        (skip, items, words) goes to `info`. Returns the next burst's word address and the words left."""
        S, B = self.item_bytes, self.data_bits // 8
        lb = B.bit_length() - 1
        wbits = self._word_count_bits
        addr = Signal(self.addr_bits)
        words_left = Signal(wbits)
        cmd = self.cmd.payload
        low = cmd.addr[:lb]
        nwords = Signal(wbits)
        m.d.comb += [nwords.eq((cmd.count * S + low + B - 1) >> lb),
                     self.cmd.ready.eq((words_left == 0) & info.w_rdy),
                     info.w_data.eq(Cat(low, cmd.count, nwords))]
        with m.If(self.cmd.valid & self.cmd.ready & (cmd.count != 0)):
            m.d.comb += info.w_en.eq(1)
            m.d.sync += [addr.eq(cmd.addr & ~Const(B - 1, self.addr_bits)), words_left.eq(nwords)]
        return addr, words_left

    def _bursts(self, m: Module, addr: Signal, words_left: Signal, fifo: SyncFIFOBuffered) -> Signal:
        """Address channel: a burst when the data FIFO has room for it (credits = words not yet popped),
        and R into the data FIFO. Returns `pop` (a word leaves the data FIFO), for the gearbox to drive."""
        B = self.data_bits // 8
        lb = B.bit_length() - 1
        to_page = Signal(range(PAGE_BYTES // B + 1))
        burst = Signal(range(self.max_burst + 1))
        free = Signal(range(self.depth + 1), init=self.depth)
        ar_valid, ar_addr, ar_len = Signal(), Signal(self.addr_bits), Signal(8)
        m.d.comb += [to_page.eq((PAGE_BYTES - addr[:12]) >> lb), burst.eq(self.max_burst)]
        with m.If((words_left <= to_page) & (words_left < self.max_burst)):
            m.d.comb += burst.eq(words_left)
        with m.Elif(to_page < self.max_burst):
            m.d.comb += burst.eq(to_page)
        issue = Signal()
        m.d.comb += issue.eq((words_left != 0) & (burst <= free) & (~ar_valid | self.arready))
        with m.If(issue):
            m.d.sync += [ar_valid.eq(1), ar_addr.eq(addr), ar_len.eq(burst - 1),
                         addr.eq(addr + (burst << lb)), words_left.eq(words_left - burst)]
        with m.Elif(self.arready):
            m.d.sync += ar_valid.eq(0)
        pop = Signal()
        m.d.sync += free.eq(free - Mux(issue, burst, 0) + pop)
        m.d.comb += [self.arvalid.eq(ar_valid), self.araddr.eq(ar_addr), self.arlen.eq(ar_len),
                     self.arsize.eq(lb), self.arburst.eq(1), self.arcache.eq(0b0011), self.arprot.eq(0),
                     self.arid.eq(0),
                     self.rready.eq(fifo.w_rdy), fifo.w_en.eq(self.rvalid), fifo.w_data.eq(self.rdata)]
        return pop

    def _gearbox(self, m: Module, rng: View, info: SyncFIFO, fifo: SyncFIFOBuffered, pop: Signal) -> Signal:
        """Gearbox: words of the data FIFO in, items out on `o`, one range (`rng`, the head of `info`) at a
        time; drives `pop`. Returns `active` (a range is being cut into items)."""
        S, B = self.item_bytes, self.data_bits // 8
        lb = B.bit_length() - 1
        cap = S + B
        active = Signal()
        items_left = Signal(self.count_bits)
        wleft = Signal(self._word_count_bits)
        first = Signal()
        skip = Signal(lb)
        fill = Signal(range(cap + 1))
        acc = Signal(8 * cap)
        out_fire, last_out, take = Signal(), Signal(), Signal()
        fill_after = Signal(range(cap + 1))
        m.d.comb += [
            self.o.valid.eq(active & (fill >= S)),
            self.o.payload.eq(acc[:8 * S]),
            out_fire.eq(self.o.valid & self.o.ready),
            last_out.eq(out_fire & (items_left == 1)),
            fill_after.eq(Mux(out_fire, fill - S, fill)),
            take.eq(active & (wleft != 0) & (fill_after <= S)),
            fifo.r_en.eq(take),
            pop.eq(take & fifo.r_rdy),
        ]
        shifted = Mux(out_fire, acc >> (8 * S), acc)
        word = Mux(first, fifo.r_data >> (skip * 8), fifo.r_data)
        added = Mux(first, B - skip, B)
        with m.If(pop):
            m.d.sync += [acc.eq(shifted | (word << (fill_after * 8))), fill.eq(fill_after + added), first.eq(0),
                         wleft.eq(wleft - 1)]
        with m.Else():
            m.d.sync += [acc.eq(shifted), fill.eq(fill_after)]
        with m.If(out_fire):
            m.d.sync += items_left.eq(items_left - 1)
        with m.If(last_out):
            m.d.sync += active.eq(0)
        with m.If((~active | last_out) & info.r_rdy):
            m.d.comb += info.r_en.eq(1)
            m.d.sync += [active.eq(1), items_left.eq(rng.items), wleft.eq(rng.words), skip.eq(rng.skip),
                         first.eq(1), fill.eq(0), acc.eq(0)]          # drops the last range's trailing bytes
        return active
