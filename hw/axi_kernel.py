"""The board kernel: `ScanCore` behind the AXI4-Lite register map and AXI4 masters (top `anole_scan_axi`).

Registers: host/board/regmap.py; buffers: host/board/layout.py; docs/board-interface.md (RTL kernel).
"""
from __future__ import annotations

from amaranth import ClockDomain, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from host.spec import regmap
from host.spec.layout import DESC_BYTES, KernelLayout
from host.spec.scan_params import ScanParams
from hw.axi_control import ControlRegs, lite_members
from hw.axi_reader import AxiReader, check_burst, check_data_bits, read_members, write_members
from hw.axi_writer import ResultWriter
from hw.interface import Op, table_beats
from hw.scan_core import ScanCore

CONTROL = "s_axi_control"
READERS = ("codes", "ids", "tables", "lists")
"""Pointer arguments read through an `AxiReader`, each on its bundle of regmap.M_AXI_BUNDLES."""
LIST_DEPTH = 16
"""Words of the descriptor reader's FIFO (and its longest burst)."""
LENS_DEPTH = 4
"""List lengths queued between the descriptor stage and the command sequencer."""


def bundles() -> list[str]:
    """AXI4 master bundles in port order (`m_axi_gmem0` ...)."""
    return sorted(set(regmap.M_AXI_BUNDLES.values()))


class AxiScanKernel(wiring.Component):
    """`ScanCore` as a Vitis/PYNQ kernel: `ap_ctrl_hs` on `s_axi_control`, one AXI4 master per bundle.

    Ports (Vitis RTL kernel naming): `ap_clk`, `ap_rst_n` (active low, synchronous), `interrupt`,
    `s_axi_control_*` (AXI4-Lite, regmap.ADDR_SPACE bytes), `m_axi_<bundle>_*` (AXI4, `data_bits` wide,
    64-bit addresses, INCR bursts of up to `max_burst` beats, several in flight per channel: `AxiReader`
    with a `depth`-word R FIFO per code, id and table reader).

    A launch is four decoupled streams (flat probe index n = q * nprobe + p):
    fetchers ask, per query, for its `nprobe` descriptors (`lists`) and its `nprobe` tables (`tables`,
    `table_beats` items of `lanes` rows each) as one range each, ahead of the scan; table items go to
    the core's table stream tagged with their probe. Each descriptor becomes one range of code beats
    and one of id beats (two masters in parallel) and its length goes to the sequencer, which sends
    the core `LIST`, the list's `ceil(len / lanes)` `CODES` beats (lane mask of the last partial beat),
    `END_LIST`, and `END_QUERY` after `nprobe` probes. The readers fetch the next lists' codes and the
    next tables while list n is scanned, so a list of N codes costs `ceil(N / lanes) + 2` cycles when
    the bus delivers a code beat and an id beat per cycle. The core's K results are written as 16-byte
    records at `results + 16 * (q * k + i)` while the next query scans; `ap_done` rises when every
    record has its B response.
    """

    def __init__(self, *, params: ScanParams, data_bits: int = 128, max_burst: int = 64, depth: int = 256):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        check_data_bits(data_bits)
        check_burst(max_burst, depth)
        self.params, self.data_bits, self.max_burst, self.depth = params, data_bits, max_burst, depth
        self.layout = KernelLayout(params)
        ports: dict[str, wiring.Member] = {"ap_clk": In(1), "ap_rst_n": In(1), "interrupt": Out(1)}
        for name, (d, w) in lite_members().items():
            ports[f"{CONTROL}_{name}"] = (In if d == "in" else Out)(w)
        for bundle in bundles():
            spec = dict(read_members(64, data_bits))
            if bundle == regmap.M_AXI_BUNDLES["results"]:
                spec.update(write_members(64, data_bits))
            for name, (d, w) in spec.items():
                ports[f"m_axi_{bundle}_{name}"] = (Out if d == "out" else In)(w)
        super().__init__(ports)

    def _bind(self, m: Module, sub, prefix: str, spec: dict[str, tuple[str, int]], outward: str) -> None:
        """Connect `sub`'s channel signals to the top ports `<prefix>_<signal>` (`outward`: the direction
        in `spec` that leaves the kernel)."""
        for name, (d, _) in spec.items():
            top, inner = getattr(self, f"{prefix}_{name}"), getattr(sub, name)
            m.d.comb += (top.eq(inner) if d == outward else inner.eq(top))

    def elaborate(self, platform):
        m = Module()
        p, lay = self.params, self.layout
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.ap_clk), cd.rst.eq(~self.ap_rst_n)]

        m.submodules.regs = regs = ControlRegs(config_value=lay.config_word)
        self._bind(m, regs, CONTROL, lite_members(), "out")
        m.d.comb += self.interrupt.eq(regs.interrupt)
        m.submodules.core = core = ScanCore(params=p)
        tbeats = table_beats(p)
        tb_shift = tbeats.bit_length() - 1
        item_bytes = {"codes": lay.code_beat_bytes, "ids": lay.id_beat_bytes,
                      "tables": p.lanes * lay.table_row_bytes, "lists": DESC_BYTES}
        count_bits = {"codes": 32, "ids": 32, "tables": 32 + tb_shift, "lists": 32}
        rd = {}
        for name in READERS:
            depth, burst = (self.depth, self.max_burst) if name != "lists" else (LIST_DEPTH, LIST_DEPTH)
            rd[name] = AxiReader(item_bytes=item_bytes[name], data_bits=self.data_bits, count_bits=count_bits[name],
                                 max_burst=burst, depth=depth)
            m.submodules[f"rd_{name}"] = rd[name]
            self._bind(m, rd[name], f"m_axi_{regmap.M_AXI_BUNDLES[name]}", read_members(64, self.data_bits), "out")
        m.submodules.wr = wr = ResultWriter(params=p, data_bits=self.data_bits)
        self._bind(m, wr, f"m_axi_{regmap.M_AXI_BUNDLES['results']}", write_members(64, self.data_bits), "out")
        wiring.connect(m, core.o, wr.i)

        nq, nprobe = Signal(32), Signal(32)
        running = Signal()

        # fetchers: per query one range of nprobe descriptors and one of nprobe tables, issued ahead
        # (the readers' FIFOs and the core's table banks bound how far)
        table_stride = Signal(64)
        for name, step in (("lists", DESC_BYTES), ("tables", None)):
            fq, faddr = Signal(32, name=f"{name}_q"), Signal(64, name=f"{name}_addr")
            cmd = rd[name].cmd
            m.d.comb += [cmd.valid.eq(running & (fq != nq) & (nprobe != 0)), cmd.payload.addr.eq(faddr),
                         cmd.payload.count.eq(nprobe if name == "lists" else nprobe << tb_shift)]
            with m.If(cmd.valid & cmd.ready):
                m.d.sync += [fq.eq(fq + 1), faddr.eq(faddr + (nprobe * step if step else table_stride))]
            with m.If(regs.start & ~running):
                m.d.sync += [fq.eq(0), faddr.eq(getattr(regs, name))]
        with m.If(regs.start & ~running):
            m.d.sync += table_stride.eq(regs.nprobe * lay.table_bytes)

        # table stream: 16-bit memory entries -> lut_bits rows of the core's table beat, tagged by probe
        tb = core.table.payload
        item = rd["tables"].o.payload
        t_beat, t_probe = Signal(tb_shift), Signal(32)
        for r in range(p.lanes):
            for j in range(p.m):
                m.d.comb += tb.rows[r][j].eq(item[16 * (r * p.m + j):][:p.lut_bits])
        m.d.comb += [tb.list.eq(t_probe), core.table.valid.eq(rd["tables"].o.valid),
                     rd["tables"].o.ready.eq(core.table.ready)]
        with m.If(core.table.valid & core.table.ready):
            m.d.sync += t_beat.eq(t_beat + 1)
            with m.If(t_beat == tbeats - 1):
                m.d.sync += t_probe.eq(Mux(t_probe + 1 == nprobe, 0, t_probe + 1))
        with m.If(regs.start & ~running):
            m.d.sync += [t_beat.eq(0), t_probe.eq(0)]

        # descriptors -> code and id ranges (registered), and each list's length for the sequencer
        desc = rd["lists"].o.payload
        d_valid, d_len = Signal(), Signal(32)
        d_addr = {"codes": Signal(64, name="d_codes"), "ids": Signal(64, name="d_ids")}
        sent = {"codes": Signal(name="sent_codes"), "ids": Signal(name="sent_ids"), "len": Signal(name="sent_len")}
        m.submodules.lens = lens = SyncFIFO(width=32, depth=LENS_DEPTH)
        fire = {"len": Signal(name="fire_len")}
        m.d.comb += [lens.w_data.eq(d_len), lens.w_en.eq(d_valid & ~sent["len"]),
                     fire["len"].eq(lens.w_en & lens.w_rdy)]
        nbeats = (d_len + p.lanes - 1) >> (p.lanes.bit_length() - 1)
        for name in ("codes", "ids"):
            cmd = rd[name].cmd
            fire[name] = Signal(name=f"fire_{name}")
            m.d.comb += [cmd.valid.eq(d_valid & ~sent[name]), cmd.payload.addr.eq(d_addr[name]),
                         cmd.payload.count.eq(nbeats), fire[name].eq(cmd.valid & cmd.ready)]
        d_done = Signal()
        m.d.comb += d_done.eq(d_valid & (sent["codes"] | fire["codes"]) & (sent["ids"] | fire["ids"]) &
                              (sent["len"] | fire["len"]))
        for name in sent:
            m.d.sync += sent[name].eq(Mux(d_done, 0, sent[name] | fire[name]))
        m.d.comb += rd["lists"].o.ready.eq(~d_valid | d_done)
        with m.If(rd["lists"].o.ready):
            m.d.sync += d_valid.eq(rd["lists"].o.valid)
            with m.If(rd["lists"].o.valid):
                m.d.sync += d_len.eq(desc[32:64])
                for name, size in (("codes", lay.code_beat_bytes), ("ids", lay.id_beat_bytes)):
                    m.d.sync += d_addr[name].eq(getattr(regs, name) + desc[:32] * size)

        # code beats: codes are in memory order already; ids are id_word_bits apart
        beat = core.i.payload
        ids_item = rd["ids"].o.payload
        for lane in range(p.lanes):
            m.d.comb += beat.ids[lane].eq(ids_item[lay.id_word_bits * lane:][:p.id_bits])
        m.d.comb += beat.codes.eq(rd["codes"].o.payload)

        # sequencer: the core's command stream, LIST CODES* END_LIST per probe, END_QUERY per query
        q, probe = Signal(32), Signal(32)
        beats_left, codes_left = Signal(32), Signal(33)
        both = rd["codes"].o.valid & rd["ids"].o.valid
        full = (1 << p.lanes) - 1
        len_beats = (lens.r_data + p.lanes - 1) >> (p.lanes.bit_length() - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(regs.start):
                    m.d.sync += [nq.eq(regs.nq), nprobe.eq(regs.nprobe), q.eq(0), probe.eq(0), running.eq(1)]
                    m.d.comb += [wr.start.eq(1), wr.base.eq(regs.results)]
                    with m.If(regs.nq == 0):
                        m.next = "FINISH"
                    with m.Elif(regs.nprobe == 0):
                        m.next = "END_QUERY"
                    with m.Else():
                        m.next = "LIST"
            with m.State("LIST"):
                m.d.comb += [core.i.valid.eq(lens.r_rdy), beat.op.eq(Op.LIST), beat.list.eq(probe)]
                with m.If(lens.r_rdy & core.i.ready):
                    m.d.comb += lens.r_en.eq(1)
                    m.d.sync += [beats_left.eq(len_beats), codes_left.eq(lens.r_data)]
                    with m.If(lens.r_data == 0):
                        m.next = "END_LIST"
                    with m.Else():
                        m.next = "CODES"
            with m.State("CODES"):
                m.d.comb += [core.i.valid.eq(both), beat.op.eq(Op.CODES), beat.list.eq(probe), beat.valid.eq(full)]
                with m.If(codes_left < p.lanes):
                    m.d.comb += beat.valid.eq((Const(1, p.lanes + 1) << codes_left[:p.lanes.bit_length()]) - 1)
                with m.If(both & core.i.ready):
                    m.d.comb += [rd["codes"].o.ready.eq(1), rd["ids"].o.ready.eq(1)]
                    m.d.sync += [beats_left.eq(beats_left - 1), codes_left.eq(codes_left - p.lanes)]
                    with m.If(beats_left == 1):
                        m.next = "END_LIST"
            with m.State("END_LIST"):
                m.d.comb += [core.i.valid.eq(1), beat.op.eq(Op.END_LIST), beat.list.eq(probe)]
                with m.If(core.i.ready):
                    m.d.sync += probe.eq(probe + 1)
                    with m.If(probe + 1 == nprobe):
                        m.next = "END_QUERY"
                    with m.Else():
                        m.next = "LIST"
            with m.State("END_QUERY"):
                m.d.comb += [core.i.valid.eq(1), beat.op.eq(Op.END_QUERY)]
                with m.If(core.i.ready):
                    m.d.sync += [q.eq(q + 1), probe.eq(0)]
                    with m.If(q + 1 == nq):
                        m.next = "FINISH"
                    with m.Elif(nprobe != 0):
                        m.next = "LIST"
            with m.State("FINISH"):
                with m.If((wr.queries == nq) & ~wr.busy & ~wr.i.valid):
                    m.d.comb += regs.done.eq(1)
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
        return m
