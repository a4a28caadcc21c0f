"""Top-K of a query over `lanes` candidates per cycle: a queue per lane, then a merge at query end."""
from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.scan_params import ScanParams
from hw.interface import key_bits, result_layout
from hw.priority_queue import InsertionQueue


def topk_in_layout(params: ScanParams) -> data.StructLayout:
    return data.StructLayout({
        "dist": data.ArrayLayout(unsigned(params.dist_bits), params.lanes),
        "id": data.ArrayLayout(unsigned(params.id_bits), params.lanes),
        "valid": unsigned(params.lanes),
        "flush": unsigned(1),
    })


class TopK(wiring.Component):
    """Keeps the K smallest keys (dist, id) of a query and emits them in ascending order.

    Input `i` (no backpressure, II = 1): up to `lanes` candidates per cycle, lane l valid when
    `valid[l]`. A beat with `flush` (and no valid lanes) ends the query: one cycle later each lane
    queue is copied into a shadow bank and emptied, so the next query's candidates enter at once
    while the merge emits K results on `o` (one per cycle under `o.ready`, `last` on the K-th),
    taking the smallest head of the `lanes` sorted shadow queues each cycle. Empty slots read
    (empty_dist, all-ones id). `busy` is high from the flush until the K-th result is accepted; a
    new flush must not arrive while `busy` (the scan core guarantees this).
    """

    def __init__(self, *, params: ScanParams):
        if not isinstance(params, ScanParams):
            raise TypeError(f"params must be a ScanParams, not {params!r}")
        self.params = params
        super().__init__({
            "i": In(stream.Signature(topk_in_layout(params), always_ready=True)),
            "o": Out(stream.Signature(result_layout(params))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.params
        kb = key_bits(p)
        ones = (1 << kb) - 1

        # stage 1: register the candidate keys (key = Cat(id, dist): dist is the high part)
        keys = [Signal(kb, init=ones, name=f"key{l}") for l in range(p.lanes)]
        flush = Signal()
        take = self.i.valid
        for l in range(p.lanes):
            with m.If(take & self.i.payload.valid[l]):
                m.d.sync += keys[l].eq(Cat(self.i.payload.id[l], self.i.payload.dist[l]))
            with m.Else():
                m.d.sync += keys[l].eq(ones)
        m.d.sync += flush.eq(take & self.i.payload.flush)

        # stage 2: one insertion queue per lane
        queues = []
        for l in range(p.lanes):
            q = InsertionQueue(depth=p.k, key_bits=kb)
            m.submodules[f"queue{l}"] = q
            m.d.comb += [q.key.eq(keys[l]), q.flush.eq(flush)]
            queues.append(q)

        # merge: shadow copies of the lane queues, drained smallest head first
        shadow = [[Signal(kb, init=ones, name=f"shadow{l}_{i}") for i in range(p.k)] for l in range(p.lanes)]
        remaining = Signal(range(p.k + 1))
        m.d.comb += self.busy.eq((remaining != 0) | self.o.valid)

        # argmin tree over the lane heads
        lane_shape = range(max(2, p.lanes))
        cands = [(shadow[l][0], Const(l, lane_shape)) for l in range(p.lanes)]
        depth = 0
        while len(cands) > 1:
            nxt = []
            for a in range(0, len(cands), 2):
                if a + 1 == len(cands):
                    nxt.append(cands[a])
                    continue
                (ka, ia), (kb_, ib) = cands[a], cands[a + 1]
                k = Signal(kb, name=f"min{depth}_{a // 2}")
                i = Signal(lane_shape, name=f"arg{depth}_{a // 2}")
                with m.If(kb_ < ka):
                    m.d.comb += [k.eq(kb_), i.eq(ib)]
                with m.Else():
                    m.d.comb += [k.eq(ka), i.eq(ia)]
                nxt.append((k, i))
            cands = nxt
            depth += 1
        best_key, best_lane = cands[0]

        pop = Signal()
        m.d.comb += pop.eq((remaining != 0) & (~self.o.valid | self.o.ready))
        with m.If(flush):
            m.d.sync += remaining.eq(p.k)
            for l in range(p.lanes):
                for i in range(p.k):
                    m.d.sync += shadow[l][i].eq(queues[l].cells[i])
        with m.Elif(pop):
            m.d.sync += remaining.eq(remaining - 1)
            for l in range(p.lanes):
                with m.If(best_lane == l):
                    for i in range(p.k):
                        m.d.sync += shadow[l][i].eq(shadow[l][i + 1] if i + 1 < p.k else ones)
        with m.If(pop):
            m.d.sync += [self.o.valid.eq(1),
                         self.o.payload.eq(Cat(best_key, remaining == 1))]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
