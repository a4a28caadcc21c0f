"""Top-K of a query over `lanes` candidates per cycle: a queue per lane, then a merge at query end."""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from host.spec.scan_params import ScanParams
from hw.interface import key_bits, result_layout
from hw.merge import LaneMerge
from hw.priority_queue import SEGMENT_DELAY, InsertionQueue, queue_segments


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
    queue is copied into the `LaneMerge` and emptied, so the next query's candidates enter at once
    while the merge emits K results on `o` (one per cycle under `o.ready`, `last` on the K-th, the
    first 3 cycles after the copy), the smallest heads of the `lanes` sorted copies. Empty slots read
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

        # one insertion queue per lane; it registers the candidate key (key = Cat(id, dist): dist is
        # the high part) and inserts it a cycle later, when the flush of the beat is registered too
        flush = Signal()
        take = self.i.valid
        m.d.sync += flush.eq(take & self.i.payload.flush)
        queues = []
        for l in range(p.lanes):
            q = InsertionQueue(depth=p.k, key_bits=kb)
            m.submodules[f"queue{l}"] = q
            m.d.comb += [q.key.eq(Cat(self.i.payload.id[l], self.i.payload.dist[l])),
                         q.valid.eq(take & self.i.payload.valid[l]), q.flush.eq(flush)]
            queues.append(q)

        # merge: the lane queues are copied at the flush and drained smallest head first
        # (a segmented queue's segments are final one after the other: the merge copies them so)
        m.submodules.merge = merge = LaneMerge(lanes=p.lanes, depth=p.k, key_bits=kb,
                                               segments=queue_segments(p.k), segment_delay=SEGMENT_DELAY)
        for l in range(p.lanes):
            m.d.comb += merge.cells[l].eq(queues[l].cells)
        m.d.comb += [merge.load.eq(flush), self.busy.eq(merge.busy),
                     self.o.valid.eq(merge.o.valid), merge.o.ready.eq(self.o.ready),
                     self.o.payload.eq(Cat(merge.o.payload.key, merge.o.payload.last))]
        return m
