"""The composed IVF-PQ scan-and-top-K core (Verilog top module `anole_scan`)."""
from __future__ import annotations

from amaranth import Module, Signal, Value
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.scan_params import ScanParams
from hw.adc import AdcLanes, adder_levels
from hw.ecp5_ram import check_ram_style
from hw.interface import Op, code_beat_layout, error_layout, result_layout, table_beat_layout
from hw.table_memory import TableMemory
from hw.topk import TopK


def core_latency(params: ScanParams) -> int:
    """Cycles from an accepted beat on `i` to its candidates entering the lane queues."""
    return TableMemory.LATENCY + adder_levels(params.m) + 2


class ScanCore(wiring.Component):
    """Scans PQ codes against ping-pong tables and keeps the top-K per query (docs/hw-interface.md).

    Ports: `table` (table loads, `table_beats(params)` beats per list), `i` (opcodes LIST, CODES,
    END_LIST, END_QUERY with up to `lanes` codes and ids per beat), `o` (K results per query in
    ascending (dist, id) order, `last` on the K-th) and `error` (sticky protocol-error flags).

    Timing contract: a CODES beat is accepted every cycle (II = 1, `lanes` codes/cycle) while a list
    is open; LIST waits until its table is fully loaded, END_QUERY until the previous query's K
    results have all been accepted on `o`. The table of the next list loads while the current list
    is scanned. Latency from the END_QUERY beat to the first result is `latency` + 2 cycles (K > 16:
    2 x (queue segments - 1) - 1 more, the flush wave of the segmented queues).
    `ram` is the table memory's block RAM style (`TableMemory`): "inferred" or "ecp5".
    """

    def __init__(self, *, params: ScanParams, ram: str = "inferred"):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        self.ram = check_ram_style(ram)
        super().__init__({
            "table": In(stream.Signature(table_beat_layout(params))),
            "i": In(stream.Signature(code_beat_layout(params))),
            "o": Out(stream.Signature(result_layout(params))),
            "error": Out(error_layout()),
        })

    @property
    def latency(self) -> int:
        return core_latency(self.params)

    def elaborate(self, platform):
        m = Module()
        p = self.params
        tag_layout = data.StructLayout({
            "valid": unsigned(p.lanes),
            "ids": data.ArrayLayout(unsigned(p.id_bits), p.lanes),
            "flush": unsigned(1),
        })
        m.submodules.tables = tables = TableMemory(params=p, ram=self.ram)
        m.submodules.adc = adc = AdcLanes(params=p, tag_shape=tag_layout)
        m.submodules.topk = topk = TopK(params=p)
        wiring.connect(m, wiring.flipped(self.table), tables.i)
        wiring.connect(m, topk.o, wiring.flipped(self.o))
        is_, list_open = self._opcodes(m, tables, topk)
        self._sideband(m, tag_layout, is_, list_open, tables, adc, topk)
        return m

    def _opcodes(self, m: Module, tables: TableMemory, topk: TopK) -> tuple[dict[Op, Value], Signal]:
        """Opcode handling: `i.ready` per opcode, the open list (acquires and releases a table bank),
        the pending query and the sticky error flags. Returns (accepted beat of each opcode, list open)."""
        beat = self.i.payload
        acc = self.i.valid & self.i.ready
        list_open = Signal()
        pending = Signal()        # an accepted END_QUERY whose K results are not all out yet
        with m.Switch(beat.op):
            with m.Case(Op.LIST):
                m.d.comb += self.i.ready.eq(tables.avail | list_open)
            with m.Case(Op.END_QUERY):
                m.d.comb += self.i.ready.eq(~pending)
            with m.Default():
                m.d.comb += self.i.ready.eq(1)

        is_ = {op: acc & (beat.op == op) for op in Op}
        err = self.error
        m.d.comb += [
            tables.addr.eq(beat.codes),
            tables.acquire.eq(is_[Op.LIST] & ~list_open),
            tables.release.eq((is_[Op.END_LIST] | is_[Op.END_QUERY]) & list_open),
        ]
        with m.If(is_[Op.LIST]):
            with m.If(list_open):
                m.d.sync += err.nested_list.eq(1)
            with m.Else():
                m.d.sync += list_open.eq(1)
                with m.If(tables.avail_list != beat.list):
                    m.d.sync += err.list_mismatch.eq(1)
        with m.If(is_[Op.CODES] & ~list_open & (beat.valid != 0)):
            m.d.sync += err.codes_outside_list.eq(1)
        with m.If(is_[Op.END_LIST]):
            with m.If(list_open):
                m.d.sync += list_open.eq(0)
            with m.Else():
                m.d.sync += err.end_outside_list.eq(1)
        with m.If(is_[Op.END_QUERY]):
            m.d.sync += pending.eq(1)
            with m.If(list_open):
                m.d.sync += [list_open.eq(0), err.query_inside_list.eq(1)]
        with m.If(topk.o.valid & topk.o.ready & topk.o.payload.last):
            m.d.sync += pending.eq(0)
        return is_, list_open

    def _sideband(self, m: Module, tag_layout: data.StructLayout, is_: dict[Op, Value], list_open: Signal,
                  tables: TableMemory, adc: AdcLanes, topk: TopK) -> None:
        """The beat's sideband (lane valid mask, ids, flush), delayed `TableMemory.LATENCY` cycles to meet
        the table lookups into the adders, and the adders' sums with their sideband into the top-K."""
        p = self.params
        tag = Signal(tag_layout)
        m.d.comb += [tag.valid.eq(self.i.payload.valid & (is_[Op.CODES] & list_open).replicate(p.lanes)),
                     tag.ids.eq(self.i.payload.ids), tag.flush.eq(is_[Op.END_QUERY])]
        for stage in range(TableMemory.LATENCY):
            nxt = Signal(tag_layout, name=f"tag{stage}")
            m.d.sync += nxt.eq(tag)
            tag = nxt
        m.d.comb += [adc.i.valid.eq((tag.valid != 0) | tag.flush),
                     adc.i.payload.entries.eq(tables.data),
                     adc.i.payload.tag.eq(tag)]
        out_tag = adc.o.payload.tag
        m.d.comb += [topk.i.valid.eq(adc.o.valid),
                     topk.i.payload.dist.eq(adc.o.payload.dist),
                     topk.i.payload.id.eq(out_tag.ids),
                     topk.i.payload.valid.eq(out_tag.valid),
                     topk.i.payload.flush.eq(out_tag.flush)]
