"""AXI4 read master that streams a byte range of memory as fixed-size items (`AxiReader`).

Also the AXI4 channel member lists used by the board kernel (`hw/axi_kernel.py`) to name its ports
the way Vitis expects them (`m_axi_<bundle>_<signal>`).
"""
from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

MAX_BURST = 16
"""Beats of the longest INCR burst the kernel issues (AXI4 allows 256; 16 is what AXI3 slaves take too)."""
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


class AxiReader(wiring.Component):
    """Reads `count` items of `item_bytes` bytes starting at byte address `addr` and emits them on `o`.

    A pulse on `start` (while not `busy`) samples `addr` and `count`. The reader issues INCR bursts of
    up to `MAX_BURST` words of `data_bits` (never across 4 KiB, one burst outstanding) from the word
    containing `addr` to the word containing the last byte, and a byte gearbox (capacity `item_bytes` +
    one word) drops the bytes before `addr` and cuts the words into items: item `i` is bytes
    `addr + i * item_bytes ...` (little-endian, byte 0 in bits 0..7). `busy` stays high until the last
    item has been accepted. Throughput: one word per cycle while `o` is ready (an item every
    `ceil(item_bytes / word bytes)` cycles plus the burst gaps); `rready` follows `o.ready`.
    """

    def __init__(self, *, item_bytes: int, data_bits: int = 128, addr_bits: int = 64, count_bits: int = 32):
        if not isinstance(item_bytes, int) or item_bytes < 1:
            raise ValueError(f"item_bytes must be a positive int, not {item_bytes!r}")
        check_data_bits(data_bits)
        self.item_bytes, self.data_bits, self.addr_bits, self.count_bits = item_bytes, data_bits, addr_bits, count_bits
        super().__init__({
            **members(read_members(addr_bits, data_bits)),
            "start": In(1), "addr": In(addr_bits), "count": In(count_bits), "busy": Out(1),
            "o": Out(stream.Signature(8 * item_bytes)),
        })

    def elaborate(self, platform):
        m = Module()
        S, B = self.item_bytes, self.data_bits // 8
        lb = B.bit_length() - 1
        cap = S + B
        words_left = Signal(self.count_bits + S.bit_length() + 1)
        items_left = Signal(self.count_bits)
        addr = Signal(self.addr_bits)
        in_burst = Signal()
        first = Signal()
        skip = Signal(range(B))
        fill = Signal(range(cap + 1))
        acc = Signal(8 * cap)

        # address channel: one burst outstanding
        to_page = Signal(range(PAGE_BYTES // B + 1))
        burst = Signal(range(MAX_BURST + 1))
        m.d.comb += to_page.eq((PAGE_BYTES - addr[:12]) >> lb)
        m.d.comb += burst.eq(MAX_BURST)
        with m.If((words_left <= to_page) & (words_left < MAX_BURST)):
            m.d.comb += burst.eq(words_left)
        with m.Elif(to_page < MAX_BURST):
            m.d.comb += burst.eq(to_page)
        m.d.comb += [self.arvalid.eq(~in_burst & (words_left != 0)), self.araddr.eq(addr),
                     self.arlen.eq(burst - 1), self.arsize.eq(lb), self.arburst.eq(1),
                     self.arcache.eq(0b0011), self.arprot.eq(0), self.arid.eq(0)]
        with m.If(self.arvalid & self.arready):
            m.d.sync += [addr.eq(addr + (burst << lb)), words_left.eq(words_left - burst), in_burst.eq(1)]

        # gearbox: words in, items out
        out_fire = Signal()
        in_fire = Signal()
        fill_after = Signal(range(cap + 1))
        m.d.comb += [
            self.o.valid.eq((fill >= S) & (items_left != 0)),
            self.o.payload.eq(acc[:8 * S]),
            out_fire.eq(self.o.valid & self.o.ready),
            fill_after.eq(Mux(out_fire, fill - S, fill)),
            self.rready.eq(in_burst & (fill_after <= S)),
            in_fire.eq(self.rvalid & self.rready),
        ]
        shifted = Mux(out_fire, acc >> (8 * S), acc)
        word = Mux(first, self.rdata >> (skip * 8), self.rdata)
        added = Mux(first, B - skip, B)
        with m.If(in_fire):
            m.d.sync += [acc.eq(shifted | (word << (fill_after * 8))), fill.eq(fill_after + added), first.eq(0)]
            with m.If(self.rlast):
                m.d.sync += in_burst.eq(0)
        with m.Else():
            m.d.sync += [acc.eq(shifted), fill.eq(fill_after)]
        with m.If(out_fire):
            m.d.sync += items_left.eq(items_left - 1)

        m.d.comb += self.busy.eq((items_left != 0) | (words_left != 0) | in_burst)
        with m.If(self.start & ~self.busy):
            low = self.addr[:lb]
            nbytes = self.count * S + low
            m.d.sync += [
                addr.eq(self.addr & ~Const(B - 1, self.addr_bits)),
                skip.eq(low), first.eq(1), fill.eq(0), acc.eq(0), items_left.eq(self.count),
                words_left.eq(Mux(self.count == 0, 0, (nbytes + B - 1) >> lb)),
            ]
        return m
