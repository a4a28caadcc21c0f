"""AXI4-Lite slave with the kernel's `ap_ctrl_hs` register map (`ControlRegs`), from host/spec/regmap.py."""
from __future__ import annotations

from amaranth import Cat, Const, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from host.spec import regmap

ADDR_BITS = (regmap.ADDR_SPACE - 1).bit_length()
"""Address bits of the AXI4-Lite slave (the map decodes ADDR_SPACE bytes)."""


def lite_members() -> dict[str, tuple[str, int]]:
    """AXI4-Lite channels seen from the slave: {signal: ("in" | "out", width)}."""
    return {"awvalid": ("in", 1), "awready": ("out", 1), "awaddr": ("in", ADDR_BITS),
            "wvalid": ("in", 1), "wready": ("out", 1), "wdata": ("in", 32), "wstrb": ("in", 4),
            "bvalid": ("out", 1), "bready": ("in", 1), "bresp": ("out", 2),
            "arvalid": ("in", 1), "arready": ("out", 1), "araddr": ("in", ADDR_BITS),
            "rvalid": ("out", 1), "rready": ("in", 1), "rdata": ("out", 32), "rresp": ("out", 2)}


class ControlRegs(wiring.Component):
    """The register file of docs/board-interface.md behind an AXI4-Lite slave.

    Kernel side: `start` pulses for one cycle when `ap_start` is set and the kernel is idle (the
    argument outputs are stable from then until `done`); a `done` pulse ends the run: `ap_done` and
    `ap_ready` are set (clear on read of CTRL), `ap_start` falls (unless `auto_restart`), ISR bits set
    where IER enables them, `config` takes `config_value` with its `ap_vld` (clear on read). `interrupt`
    is GIE & (ISR != 0). Writes take one cycle after both AW and W are valid (B follows), reads answer
    the cycle after AR; unmapped and read-only words ignore writes and unmapped words read 0.
    `read_error` / `write_error` (an AXI error response seen by a master) set the sticky bits of
    AXI_ERROR, cleared by `start`.
    """

    def __init__(self, *, config_value: int):
        if not 0 <= config_value < 1 << 32:
            raise ValueError(f"config_value must fit 32 bits, not {config_value!r}")
        self.config_value = config_value
        ports = {name: (In if d == "in" else Out)(w) for name, (d, w) in lite_members().items()}
        ports.update({name: Out(64) for name in regmap.POINTER_ARGS})
        ports.update({name: Out(32) for name in regmap.SCALAR_ARGS})
        ports.update({"start": Out(1), "done": In(1), "interrupt": Out(1), "read_error": In(1), "write_error": In(1)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        ap_start, ap_done, ap_ready, auto_restart, busy = (Signal(name=n) for n in
                                                           ("ap_start", "ap_done", "ap_ready", "auto_restart", "busy"))
        gie, ier, isr = Signal(), Signal(2), Signal(2)
        config, config_vld, axi_error = Signal(32), Signal(), Signal(2)
        ctrl = Cat(ap_start, ap_done, ~busy, ap_ready, Const(0, 3), auto_restart)
        words = {regmap.CTRL: ctrl, regmap.GIE: gie, regmap.IER: ier, regmap.ISR: isr,
                 regmap.ARG_OFFSETS["config"]: config, regmap.CONFIG_CTRL: config_vld, regmap.AXI_ERROR: axi_error}
        writable = {regmap.GIE: gie, regmap.IER: ier}
        self._add_args(words, writable)
        self._write_channel(m, writable, ap_start, auto_restart, isr)
        self._read_channel(m, words, ap_done, ap_ready, config_vld)

        # kernel handshake (after the bus logic: a done in the same cycle as a clearing read wins)
        m.d.comb += [self.start.eq(ap_start & ~busy), self.interrupt.eq(gie & (isr != 0))]
        with m.If(self.start):
            m.d.sync += [busy.eq(1), axi_error.eq(0)]
        with m.Else():
            m.d.sync += axi_error.eq(axi_error | Cat(self.read_error, self.write_error))
        with m.If(self.done):
            m.d.sync += [busy.eq(0), ap_done.eq(1), ap_ready.eq(1), ap_start.eq(auto_restart),
                         isr.eq(isr | ier), config.eq(self.config_value), config_vld.eq(1)]
        return m

    def _add_args(self, words: dict[int, Value], writable: dict[int, Value]) -> None:
        """Map the argument outputs: each pointer as two words (low, high), each scalar as one; all
        readable (`words`) and writable (`writable`), by byte offset."""
        for name in regmap.POINTER_ARGS:
            off = regmap.ARG_OFFSETS[name]
            words[off], words[off + 4] = getattr(self, name)[:32], getattr(self, name)[32:]
            writable[off], writable[off + 4] = words[off], words[off + 4]
        for name in regmap.SCALAR_ARGS:
            words[regmap.ARG_OFFSETS[name]] = writable[regmap.ARG_OFFSETS[name]] = getattr(self, name)

    def _write_channel(self, m: Module, writable: dict[int, Value], ap_start: Signal, auto_restart: Signal,
                       isr: Signal) -> None:
        """Write channel: AW and W together, then B. Writable words take the strobed bytes; CTRL sets
        `auto_restart` and `ap_start`, ISR toggles its bits (byte 0 strobed)."""
        wfire = Signal()
        mask = Cat(*(self.wstrb[i].replicate(8) for i in range(4)))
        m.d.comb += [wfire.eq(self.awvalid & self.wvalid & ~self.bvalid),
                     self.awready.eq(wfire), self.wready.eq(wfire), self.bresp.eq(0)]
        with m.If(wfire):
            m.d.sync += self.bvalid.eq(1)
        with m.Elif(self.bready):
            m.d.sync += self.bvalid.eq(0)
        waddr = Cat(0, 0, self.awaddr[2:])
        with m.If(wfire):
            with m.Switch(waddr):
                for off, reg in writable.items():
                    with m.Case(off):
                        m.d.sync += reg.eq((reg & ~mask[:len(reg)]) | (self.wdata & mask)[:len(reg)])
                with m.Case(regmap.CTRL):
                    with m.If(self.wstrb[0]):
                        m.d.sync += auto_restart.eq(self.wdata[7])
                        with m.If(self.wdata[0]):
                            m.d.sync += ap_start.eq(1)
                with m.Case(regmap.ISR):
                    with m.If(self.wstrb[0]):
                        m.d.sync += isr.eq(isr ^ self.wdata[:2])

    def _read_channel(self, m: Module, words: dict[int, Value], ap_done: Signal, ap_ready: Signal,
                      config_vld: Signal) -> None:
        """Read channel: data registered the cycle after AR (0 for unmapped words); clear-on-read side
        effects (CTRL: `ap_done`, `ap_ready`; CONFIG_CTRL: `config_vld`) at AR."""
        rfire = Signal()
        m.d.comb += [rfire.eq(self.arvalid & ~self.rvalid), self.arready.eq(rfire), self.rresp.eq(0)]
        raddr = Cat(0, 0, self.araddr[2:])
        with m.If(rfire):
            m.d.sync += [self.rvalid.eq(1), self.rdata.eq(0)]
            with m.Switch(raddr):
                for off, reg in words.items():
                    with m.Case(off):
                        m.d.sync += self.rdata.eq(reg)
                        if off == regmap.CTRL:
                            m.d.sync += [ap_done.eq(0), ap_ready.eq(0)]
                        elif off == regmap.CONFIG_CTRL:
                            m.d.sync += config_vld.eq(0)
        with m.Elif(self.rready):
            m.d.sync += self.rvalid.eq(0)
