"""Simple dual-port RAM built from ECP5 DP16KD block RAMs with their output register in use.

yosys's ECP5 memory mapping always leaves a DP16KD's output register off (NOREG: about 4.2 ns
clock-to-out on speed 8, most of a 150 MHz cycle). This component instantiates the DP16KD itself,
in its 512 x 36 pseudo-dual-port mode (port A writes, port B reads), with REGMODE OUTREG: the
read data comes from the register inside the block RAM, two cycles after the address.

Simulation: `sim/models/DP16KD.v` models exactly this use of the primitive (Verilator, Icarus);
`amaranth.sim` cannot simulate it (the table memory's default `ram="inferred"` is the one the
Amaranth unit tests use).
"""
from __future__ import annotations

from amaranth import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

WORDS = 512        # words of one DP16KD in its 36-bit mode
SLICE = 36         # bits per DP16KD word
ADDR_LSB = 5       # a 36-bit word address sits on AD[13:5]; AD[3:0] are the write byte enables
RAM_STYLES = ("inferred", "ecp5")


def check_ram_style(ram: str) -> str:
    if ram not in RAM_STYLES:
        raise ValueError(f"ram must be one of {RAM_STYLES}, not {ram!r}")
    return ram


class Ecp5Ram(wiring.Component):
    """`depth` words of `width` bits (depth <= 512) in ceil(width / 36) DP16KD side by side.

    Write: `wen`, `waddr`, `wdata` sampled at the clock edge. Read: `raddr` at an edge, `rdata`
    valid after the second edge (RAM read, then its output register), every cycle. Reading a
    word in the cycle it is written is not defined (the users never do).
    """

    LATENCY = 2

    def __init__(self, *, width: int, depth: int):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(depth, int) or not 1 <= depth <= WORDS:
            raise ValueError(f"depth must be in 1..{WORDS}, not {depth!r}")
        self.width, self.depth = width, depth
        abits = max(1, (depth - 1).bit_length())
        super().__init__({
            "wen": In(1), "waddr": In(abits), "wdata": In(width),
            "raddr": In(abits), "rdata": Out(width),
        })

    @property
    def blocks(self) -> int:
        return -(-self.width // SLICE)

    def elaborate(self, platform):
        m = Module()
        abits = len(self.waddr)

        def address(word):
            # AD[13:5] = word address; for a write AD[3:0] enable the four 9-bit bytes
            return Cat(Const(0b1111, 4), Const(0, 1), word, Const(0, 9 - abits))

        wa, ra = address(self.waddr), address(self.raddr)
        for b in range(self.blocks):
            lo, hi = b * SLICE, min((b + 1) * SLICE, self.width)
            di = Signal(SLICE, name=f"di{b}")
            do = Signal(SLICE, name=f"do{b}")
            m.d.comb += [di.eq(self.wdata[lo:hi]), self.rdata[lo:hi].eq(do[:hi - lo])]
            ports = {"i_CLKA": ClockSignal(), "i_CEA": self.wen, "i_WEA": Const(1), "i_OCEA": Const(1),
                     "i_RSTA": Const(0), "i_CLKB": ClockSignal(), "i_CEB": Const(1), "i_WEB": Const(0),
                     "i_OCEB": Const(1), "i_RSTB": Const(0)}
            for x in "AB":
                ports.update({f"i_CS{x}{n}": Const(0) for n in range(3)})
            for n in range(14):
                ports[f"i_ADA{n}"] = wa[n]
                ports[f"i_ADB{n}"] = Const(0) if n < ADDR_LSB else ra[n]
            for n in range(18):
                # a 36-bit word is {B, A}: bits 0-17 on port A's pins, 18-35 on port B's
                ports.update({f"i_DIA{n}": di[n], f"i_DIB{n}": di[18 + n],
                              f"o_DOA{n}": do[n], f"o_DOB{n}": do[18 + n]})
            m.submodules[f"ebr{b}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=36, p_DATA_WIDTH_B=36, p_REGMODE_A="OUTREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000",
                p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                p_CLKAMUX="CLKA", p_CLKBMUX="CLKB", p_GSR="AUTO", **ports)
        return m
