"""The board kernel: `ScanCore` behind the AXI4-Lite register map and AXI4 masters (top `anole_scan_axi`).

Registers: host/spec/regmap.py; buffers: host/spec/layout.py; docs/board-interface.md (RTL kernel).
Stages: `ControlRegs` (hw/axi_control.py), `LaunchSequencer` (hw/axi_sequencer.py), `QueryFetcher` and
`DescriptorSplitter` (hw/axi_fetch.py), `AxiReader` (hw/axi_reader.py), `TableFeed` (here), `ScanCore`
(hw/scan_core.py), `ResultWriter` (hw/axi_writer.py); `AxiScanKernel` composes them.
"""
from __future__ import annotations

from amaranth import Cat, ClockDomain, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from host.spec import regmap
from host.spec.layout import DESC_BYTES, TABLE_ENTRY_BYTES, KernelLayout
from host.spec.scan_params import ScanParams
from hw.axi_control import ControlRegs, lite_members
from hw.axi_fetch import DescriptorSplitter, QueryFetcher
from hw.axi_reader import AxiReader, check_burst, check_data_bits, read_members, write_members
from hw.axi_sequencer import LaunchSequencer, launch_signature
from hw.axi_writer import ResultWriter
from hw.interface import table_beat_layout, table_beats
from hw.scan_core import ScanCore

CONTROL = "s_axi_control"
LIST_DEPTH = 16
"""Words of the descriptor reader's FIFO (and its longest burst)."""
LENS_DEPTH = 4
"""List lengths queued between the descriptor stage and the command sequencer."""


def bundles() -> list[str]:
    """AXI4 master bundles in port order (`m_axi_gmem0` ...)."""
    return sorted(set(regmap.M_AXI_BUNDLES.values()))


class TableFeed(wiring.Component):
    """The table reader's items as the core's table beats, each tagged with the probe its table is for.

    An item on `i` is `lanes` table rows of `m` little-endian 16-bit entries (host/spec/layout.py); on
    `o` it is one `table_beat_layout` beat of the entries' low `lut_bits`, with `list` = the probe p of
    its table: `table_beats(params)` beats per table, p counting 0 .. `launch.nprobe` - 1 and wrapping
    (one table per probe of every query). Timing: `o` is `i` rewired, no latency and no buffer
    (`o.valid` = `i.valid`, `i.ready` = `o.ready`); only the beat and probe counts are registered,
    and `launch.begin` restarts them at beat 0 of probe 0.
    """

    def __init__(self, *, params: ScanParams):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        super().__init__({
            "launch": In(launch_signature()),
            "i": In(stream.Signature(8 * params.lanes * KernelLayout(params).table_row_bytes)),
            "o": Out(stream.Signature(table_beat_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        p, entry_bits = self.params, 8 * TABLE_ENTRY_BYTES
        tbeats = table_beats(p)
        beat, probe = Signal(tbeats.bit_length() - 1), Signal(32)
        for r in range(p.lanes):
            for j in range(p.m):
                m.d.comb += self.o.payload.rows[r][j].eq(self.i.payload[entry_bits * (r * p.m + j):][:p.lut_bits])
        m.d.comb += [self.o.payload.list.eq(probe), self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(beat == tbeats - 1):
                m.d.sync += probe.eq(Mux(probe + 1 == self.launch.nprobe, 0, probe + 1))
        with m.If(self.launch.begin):
            m.d.sync += [beat.eq(0), probe.eq(0)]
        return m


class AxiScanKernel(wiring.Component):
    """`ScanCore` as a Vitis/PYNQ kernel: `ap_ctrl_hs` on `s_axi_control`, one AXI4 master per bundle.

    Ports (Vitis RTL kernel naming): `ap_clk`, `ap_rst_n` (active low, synchronous), `interrupt`,
    `s_axi_control_*` (AXI4-Lite, regmap.ADDR_SPACE bytes), `m_axi_<bundle>_*` (AXI4, `data_bits` wide,
    64-bit addresses, INCR bursts of up to `max_burst` beats, several in flight per channel: `AxiReader`
    with a `depth`-word R FIFO per code, id and table reader).

    A launch is four decoupled streams (flat probe index n = q * nprobe + p), started by the
    `LaunchSequencer` when `ControlRegs` pulses `start`:
    `QueryFetcher`s ask, per query, for its `nprobe` descriptors (`lists`) and its `nprobe` tables
    (`tables`, `table_beats` items of `lanes` rows each) as one range each, ahead of the scan; the
    `TableFeed` sends table items to the core's table stream tagged with their probe. The
    `DescriptorSplitter` makes each descriptor one range of code beats and one of id beats (two masters
    in parallel) and queues its length (`lens`, `LENS_DEPTH` deep) for the sequencer, which sends the
    core `LIST`, the list's `ceil(len / lanes)` `CODES` beats (lane mask of the last partial beat),
    `END_LIST`, and `END_QUERY` after `nprobe` probes. The readers fetch the next lists' codes and the
    next tables while list n is scanned, so a list of N codes costs `ceil(N / lanes) + 2` cycles when
    the bus delivers a code beat and an id beat per cycle. The core's K results are written by the
    `ResultWriter` as 16-byte records at `results + 16 * (q * k + i)` while the next query scans;
    `ap_done` rises when every record has its B response.
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

    def _reader(self, m: Module, arg: str, item_bytes: int, count_bits: int = 32) -> AxiReader:
        """The `AxiReader` of pointer argument `arg`, bound to the read channels of its bundle."""
        depth, burst = (LIST_DEPTH, LIST_DEPTH) if arg == "lists" else (self.depth, self.max_burst)
        reader = AxiReader(item_bytes=item_bytes, data_bits=self.data_bits, count_bits=count_bits,
                           max_burst=burst, depth=depth)
        self._bind(m, reader, f"m_axi_{regmap.M_AXI_BUNDLES[arg]}", read_members(64, self.data_bits), "out")
        return reader

    def elaborate(self, platform):
        m = Module()
        p, lay = self.params, self.layout
        m.domains.sync = cd = ClockDomain("sync")
        m.d.comb += [cd.clk.eq(self.ap_clk), cd.rst.eq(~self.ap_rst_n)]

        m.submodules.regs = regs = ControlRegs(config_value=lay.config_word)
        self._bind(m, regs, CONTROL, lite_members(), "out")
        m.submodules.seq = seq = LaunchSequencer(params=p)
        m.submodules.fetch_lists = fetch_lists = QueryFetcher(probe_items=1)
        m.submodules.fetch_tables = fetch_tables = QueryFetcher(probe_items=table_beats(p))
        m.submodules.rd_codes = rd_codes = self._reader(m, "codes", lay.code_beat_bytes)
        m.submodules.rd_ids = rd_ids = self._reader(m, "ids", lay.id_beat_bytes)
        m.submodules.rd_tables = rd_tables = self._reader(m, "tables", p.lanes * lay.table_row_bytes,
                                                          fetch_tables.count_bits)
        m.submodules.rd_lists = rd_lists = self._reader(m, "lists", DESC_BYTES)
        m.submodules.table_feed = table_feed = TableFeed(params=p)
        m.submodules.desc = desc = DescriptorSplitter(params=p)
        m.submodules.lens = lens = SyncFIFO(width=32, depth=LENS_DEPTH)
        m.submodules.core = core = ScanCore(params=p)
        m.submodules.wr = wr = ResultWriter(params=p, data_bits=self.data_bits)
        self._bind(m, wr, f"m_axi_{regmap.M_AXI_BUNDLES['results']}", write_members(64, self.data_bits), "out")

        # launch: arguments and handshake with the registers, its state to the per-query stages
        m.d.comb += [seq.start.eq(regs.start), seq.nq_arg.eq(regs.nq), seq.nprobe_arg.eq(regs.nprobe),
                     regs.done.eq(seq.done), self.interrupt.eq(regs.interrupt),
                     wr.start.eq(seq.launch.begin), wr.base.eq(regs.results),
                     seq.queries_written.eq(wr.queries), seq.results_busy.eq(wr.busy | wr.i.valid)]
        wiring.connect(m, seq.launch, fetch_lists.launch, fetch_tables.launch, table_feed.launch)
        # per query: its descriptors and its tables
        m.d.comb += [fetch_lists.base.eq(regs.lists), fetch_lists.stride.eq(regs.nprobe * DESC_BYTES),
                     fetch_tables.base.eq(regs.tables), fetch_tables.stride.eq(regs.nprobe * lay.table_bytes)]
        wiring.connect(m, fetch_lists.cmd, rd_lists.cmd)
        wiring.connect(m, fetch_tables.cmd, rd_tables.cmd)
        wiring.connect(m, rd_tables.o, table_feed.i)
        wiring.connect(m, table_feed.o, core.table)
        # per list: its code and id ranges, its length to the sequencer
        m.d.comb += [desc.codes_base.eq(regs.codes), desc.ids_base.eq(regs.ids)]
        wiring.connect(m, rd_lists.o, desc.i)
        wiring.connect(m, desc.codes, rd_codes.cmd)
        wiring.connect(m, desc.ids, rd_ids.cmd)
        wiring.connect(m, desc.lens, lens.w_stream)
        wiring.connect(m, lens.r_stream, seq.lens)
        # per beat: codes and ids into the core's command stream, results out
        wiring.connect(m, rd_codes.o, seq.codes)
        wiring.connect(m, rd_ids.o, seq.ids)
        wiring.connect(m, seq.o, core.i)
        wiring.connect(m, core.o, wr.i)
        self._response_errors(m, regs)
        return m

    def _response_errors(self, m: Module, regs: ControlRegs) -> None:
        """SLVERR / DECERR (`resp[1]`) on an accepted R beat of any bundle or on the B of the results."""
        def port(bundle, name):
            return getattr(self, f"m_axi_{bundle}_{name}")
        bundles = sorted(set(regmap.M_AXI_BUNDLES.values()))
        wb = regmap.M_AXI_BUNDLES["results"]
        m.d.comb += [
            regs.read_error.eq(Cat(*[port(b, "rvalid") & port(b, "rready") & port(b, "rresp")[1]
                                     for b in bundles]).any()),
            regs.write_error.eq(port(wb, "bvalid") & port(wb, "bready") & port(wb, "bresp")[1])]
