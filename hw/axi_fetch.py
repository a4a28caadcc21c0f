"""What the board kernel's readers fetch: per query (`QueryFetcher`) and per list (`DescriptorSplitter`).

Both emit `AxiReader` commands (`range_layout`): a byte address and a count of the reader's items.
"""
from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.layout import DESC_BYTES, KernelLayout
from host.spec.scan_params import ScanParams
from hw.axi_sequencer import launch_signature


def range_layout(count_bits: int = 32, addr_bits: int = 64) -> data.StructLayout:
    """Payload of an `AxiReader` command: `count` items from byte address `addr`."""
    return data.StructLayout({"addr": addr_bits, "count": count_bits})


class QueryFetcher(wiring.Component):
    """Per query of a launch, one reader command for the range of its `nprobe` probes' items.

    Command `q` (q = 0 .. nq - 1) asks for `launch.nprobe * probe_items` items at byte address
    `base + q * stride`; `base` and `stride` are sampled at `launch.begin` (which also restarts at
    q = 0). There is no command when `nprobe` = 0.

    Timing: `cmd.valid` is combinational from the registered query count and the launch state: the
    first command is offered the cycle after `launch.begin`, each next one the cycle after the
    previous one was taken (one command per cycle at most), so the fetcher runs ahead of the scan as
    far as the reader (its queue of ranges and its data FIFO) and the stages after it let it.
    `count_bits` = 32 + log2(`probe_items`): the count never overflows.
    """

    def __init__(self, *, probe_items: int):
        if not isinstance(probe_items, int) or probe_items < 1 or probe_items & (probe_items - 1):
            raise ValueError(f"probe_items must be a power of two, not {probe_items!r}")
        self.probe_items = probe_items
        self.count_bits = 32 + probe_items.bit_length() - 1
        super().__init__({
            "launch": In(launch_signature()),
            "base": In(64), "stride": In(64),
            "cmd": Out(stream.Signature(range_layout(self.count_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        launch, cmd = self.launch, self.cmd
        query, addr, stride = Signal(32), Signal(64), Signal(64)
        m.d.comb += [cmd.valid.eq(launch.running & (query != launch.nq) & (launch.nprobe != 0)),
                     cmd.payload.addr.eq(addr),
                     cmd.payload.count.eq(launch.nprobe << (self.probe_items.bit_length() - 1))]
        with m.If(cmd.valid & cmd.ready):
            m.d.sync += [query.eq(query + 1), addr.eq(addr + stride)]
        with m.If(launch.begin):
            m.d.sync += [query.eq(0), addr.eq(self.base), stride.eq(self.stride)]
        return m


class DescriptorSplitter(wiring.Component):
    """Each list descriptor becomes one range of code beats, one range of id beats and the list's length.

    A descriptor on `i` (u64 of host/spec/layout.py: first code beat in bits 0..31, codes `len` in
    bits 32..63) is registered, and from the next cycle offered on all three outputs at once:
    `codes` (`ceil(len / lanes)` beats of `lanes * m` bytes at `codes_base + first * lanes * m`), `ids`
    (as many beats of `lanes * id_word_bytes` at `ids_base + first * lanes * id_word_bytes`) and `lens`
    (`len`). Each output is offered until it is taken, independently of the others; the next
    descriptor is taken on `i` in the cycle the last of the three is taken (`i.ready` is high while
    none is held), so with all three ready a descriptor passes per cycle, one cycle of latency.
    `codes_base` and `ids_base` must be stable while descriptors flow (the launch's arguments).
    """

    def __init__(self, *, params: ScanParams):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        self.layout = KernelLayout(params)
        super().__init__({
            "codes_base": In(64), "ids_base": In(64),
            "i": In(stream.Signature(8 * DESC_BYTES)),
            "codes": Out(stream.Signature(range_layout())),
            "ids": Out(stream.Signature(range_layout())),
            "lens": Out(stream.Signature(32)),
        })

    def elaborate(self, platform):
        m = Module()
        p, lay = self.params, self.layout
        valid, length = Signal(), Signal(32)
        ranges = {"codes": (self.codes, self.codes_base, lay.code_beat_bytes),
                  "ids": (self.ids, self.ids_base, lay.id_beat_bytes)}
        outs = {"codes": self.codes, "ids": self.ids, "len": self.lens}
        sent = {name: Signal(name=f"sent_{name}") for name in outs}
        fire = {name: Signal(name=f"fire_{name}") for name in outs}
        addr = {name: Signal(64, name=f"{name}_addr") for name in ranges}
        nbeats = (length + p.lanes - 1) >> (p.lanes.bit_length() - 1)
        m.d.comb += self.lens.payload.eq(length)
        for name, (out, _, _) in ranges.items():
            m.d.comb += [out.payload.addr.eq(addr[name]), out.payload.count.eq(nbeats)]
        for name, out in outs.items():
            m.d.comb += [out.valid.eq(valid & ~sent[name]), fire[name].eq(out.valid & out.ready)]
        done = Signal()
        m.d.comb += done.eq(valid & (sent["codes"] | fire["codes"]) & (sent["ids"] | fire["ids"]) &
                            (sent["len"] | fire["len"]))
        for name in sent:
            m.d.sync += sent[name].eq(Mux(done, 0, sent[name] | fire[name]))
        m.d.comb += self.i.ready.eq(~valid | done)
        with m.If(self.i.ready):
            m.d.sync += valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += length.eq(self.i.payload[32:64])
                for name, (_, base, size) in ranges.items():
                    m.d.sync += addr[name].eq(base + self.i.payload[:32] * size)
        return m
