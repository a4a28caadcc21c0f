"""The board kernel: `ScanCore` behind the AXI4-Lite register map and AXI4 masters (top `anole_scan_axi`).

Registers: host/board/regmap.py; buffers: host/board/layout.py; docs/board-interface.md (RTL kernel).
"""
from __future__ import annotations

from amaranth import ClockDomain, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from host.board import regmap
from host.board.layout import DESC_BYTES, KernelLayout
from host.scan_params import ScanParams
from hw.axi_control import ControlRegs, lite_members
from hw.axi_reader import AxiReader, check_data_bits, read_members, write_members
from hw.axi_writer import ResultWriter
from hw.interface import Op, table_beats
from hw.scan_core import ScanCore

CONTROL = "s_axi_control"
READERS = ("codes", "ids", "tables", "lists")
"""Pointer arguments read through an `AxiReader`, each on its bundle of regmap.M_AXI_BUNDLES."""


def bundles() -> list[str]:
    """AXI4 master bundles in port order (`m_axi_gmem0` ...)."""
    return sorted(set(regmap.M_AXI_BUNDLES.values()))


class AxiScanKernel(wiring.Component):
    """`ScanCore` as a Vitis/PYNQ kernel: `ap_ctrl_hs` on `s_axi_control`, one AXI4 master per bundle.

    Ports (Vitis RTL kernel naming): `ap_clk`, `ap_rst_n` (active low, synchronous), `interrupt`,
    `s_axi_control_*` (AXI4-Lite, regmap.ADDR_SPACE bytes), `m_axi_<bundle>_*` (AXI4, `data_bits` wide,
    64-bit addresses, INCR bursts of up to 16 beats, one burst outstanding per channel).

    A launch, for each query q and probe p (flat index n = q * nprobe + p): read descriptor n from
    `lists` and table n (`table_beats` items of `lanes` rows) from `tables` into the core's table
    stream; `LIST` (the core waits for the table); read the list's `ceil(len / lanes)` beats from `codes`
    and `ids` (two masters in parallel) as `CODES` beats with the lane mask of the last partial beat;
    `END_LIST`. After the probes, `END_QUERY`; the core's K results are written as 16-byte records at
    `results + 16 * (q * k + i)` while the next query scans. A fetcher starts descriptor and table n + 1
    as soon as descriptor n is taken and table n is loaded, so the next table streams into the core's
    free bank while list n is scanned. `ap_done` rises when every record has its B response. A probe
    costs about max(table words, code-beat words of the list) + burst latencies.
    """

    def __init__(self, *, params: ScanParams, data_bits: int = 128):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        check_data_bits(data_bits)
        self.params, self.data_bits = params, data_bits
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
        item_bytes = {"codes": lay.code_beat_bytes, "ids": lay.id_beat_bytes,
                      "tables": p.lanes * lay.table_row_bytes, "lists": DESC_BYTES}
        rd = {}
        for name in READERS:
            rd[name] = AxiReader(item_bytes=item_bytes[name], data_bits=self.data_bits)
            m.submodules[f"rd_{name}"] = rd[name]
            self._bind(m, rd[name], f"m_axi_{regmap.M_AXI_BUNDLES[name]}", read_members(64, self.data_bits), "out")
        m.submodules.wr = wr = ResultWriter(params=p, data_bits=self.data_bits)
        self._bind(m, wr, f"m_axi_{regmap.M_AXI_BUNDLES['results']}", write_members(64, self.data_bits), "out")
        wiring.connect(m, core.o, wr.i)

        # table stream: 16-bit memory entries -> lut_bits rows of the core's table beat
        tb = core.table.payload
        item = rd["tables"].o.payload
        table_tag = Signal(p.list_bits)
        for r in range(p.lanes):
            for j in range(p.m):
                m.d.comb += tb.rows[r][j].eq(item[16 * (r * p.m + j):][:p.lut_bits])
        m.d.comb += [tb.list.eq(table_tag), core.table.valid.eq(rd["tables"].o.valid),
                     rd["tables"].o.ready.eq(core.table.ready)]

        # code beats: codes are in memory order already; ids are id_word_bits apart
        beat = core.i.payload
        ids_item = rd["ids"].o.payload
        for lane in range(p.lanes):
            m.d.comb += beat.ids[lane].eq(ids_item[lay.id_word_bits * lane:][:p.id_bits])
        m.d.comb += beat.codes.eq(rd["codes"].o.payload)

        nq, nprobe = Signal(32), Signal(32)
        q, probe = Signal(32), Signal(32)

        # fetcher: descriptor and table of the next probe, as soon as both readers are free (the table
        # streams into the core's free bank while the current list is scanned)
        fetching = Signal()
        fetch_q, fetch_p = Signal(32), Signal(32)
        lists_addr, tables_addr = Signal(64), Signal(64)
        can_fetch = fetching & (fetch_q != nq) & (nprobe != 0) & ~rd["lists"].busy & ~rd["tables"].busy
        with m.If(can_fetch):
            m.d.comb += [rd["lists"].start.eq(1), rd["lists"].addr.eq(lists_addr), rd["lists"].count.eq(1),
                         rd["tables"].start.eq(1), rd["tables"].addr.eq(tables_addr),
                         rd["tables"].count.eq(table_beats(p))]
            m.d.sync += [table_tag.eq(fetch_p), lists_addr.eq(lists_addr + DESC_BYTES),
                         tables_addr.eq(tables_addr + lay.table_bytes), fetch_p.eq(fetch_p + 1)]
            with m.If(fetch_p + 1 == nprobe):
                m.d.sync += [fetch_p.eq(0), fetch_q.eq(fetch_q + 1)]

        # sequencer: the core's command stream, probe by probe
        beats_left, codes_left = Signal(32), Signal(33)
        desc = rd["lists"].o.payload
        both = rd["codes"].o.valid & rd["ids"].o.valid
        full = (1 << p.lanes) - 1
        with m.FSM():
            with m.State("IDLE"):
                with m.If(regs.start):
                    m.d.sync += [nq.eq(regs.nq), nprobe.eq(regs.nprobe), q.eq(0), fetching.eq(1),
                                 fetch_q.eq(0), fetch_p.eq(0), lists_addr.eq(regs.lists), tables_addr.eq(regs.tables)]
                    m.d.comb += [wr.start.eq(1), wr.base.eq(regs.results)]
                    m.next = "QUERY"
            with m.State("QUERY"):
                m.d.sync += probe.eq(0)
                with m.If(q == nq):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "PROBE"
            with m.State("PROBE"):
                with m.If(probe == nprobe):
                    m.next = "END_QUERY"
                with m.Else():
                    m.next = "DESC"
            with m.State("DESC"):
                m.d.comb += rd["lists"].o.ready.eq(1)
                with m.If(rd["lists"].o.valid):
                    first, length = desc[:32], desc[32:64]
                    nbeats = (length + p.lanes - 1) >> (p.lanes.bit_length() - 1)
                    for name, size in (("codes", lay.code_beat_bytes), ("ids", lay.id_beat_bytes)):
                        m.d.sync += [rd[name].addr.eq(getattr(regs, name) + first * size)]
                    m.d.sync += [beats_left.eq(nbeats), codes_left.eq(length)]
                    m.next = "LIST"
            with m.State("LIST"):
                m.d.comb += [core.i.valid.eq(1), beat.op.eq(Op.LIST), beat.list.eq(probe)]
                with m.If(core.i.ready):
                    for name in ("codes", "ids"):
                        m.d.comb += [rd[name].start.eq(1), rd[name].count.eq(beats_left)]
                    m.next = "CODES"
            with m.State("CODES"):
                with m.If(beats_left == 0):
                    m.next = "END_LIST"
                with m.Else():
                    m.d.comb += [core.i.valid.eq(both), beat.op.eq(Op.CODES), beat.list.eq(probe),
                                 beat.valid.eq(full)]
                    with m.If(codes_left < p.lanes):
                        m.d.comb += beat.valid.eq((Const(1, p.lanes + 1) << codes_left[:p.lanes.bit_length()]) - 1)
                    with m.If(both & core.i.ready):
                        m.d.comb += [rd["codes"].o.ready.eq(1), rd["ids"].o.ready.eq(1)]
                        m.d.sync += [beats_left.eq(beats_left - 1), codes_left.eq(codes_left - p.lanes)]
            with m.State("END_LIST"):
                m.d.comb += [core.i.valid.eq(1), beat.op.eq(Op.END_LIST), beat.list.eq(probe)]
                with m.If(core.i.ready):
                    m.d.sync += probe.eq(probe + 1)
                    m.next = "PROBE"
            with m.State("END_QUERY"):
                m.d.comb += [core.i.valid.eq(1), beat.op.eq(Op.END_QUERY)]
                with m.If(core.i.ready):
                    m.d.sync += q.eq(q + 1)
                    m.next = "QUERY"
            with m.State("FINISH"):
                with m.If((wr.queries == nq) & ~wr.busy & ~wr.i.valid):
                    m.d.comb += regs.done.eq(1)
                    m.d.sync += fetching.eq(0)
                    m.next = "IDLE"
        return m
