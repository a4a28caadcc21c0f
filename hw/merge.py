"""Merge of `lanes` sorted queues into one ascending stream, one result per cycle."""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class LaneMerge(wiring.Component):
    """Copies `lanes` sorted queues of `depth` keys on `load` and emits them merged on `o`.

    `o` carries `{key, last}`; `last` marks the `depth`-th output: only the `depth` smallest keys
    of all lanes are emitted, ascending (equal keys: lower lane first). One output per cycle under
    `o.ready`; `busy` from `load` until the last output is accepted (`load` while `busy` is not
    allowed); the first output is on `o` 3 cycles after `load` (with `segments`: segment s of every
    lane's cells is copied `segment_delay * s` cycles after `load`, and the first output comes
    `max(1, segment_delay * (segments - 1)) + 2` cycles after `load`). Timing: every cycle each lane's
    head and second key are compared with the other heads into registers; the winner follows from
    those bits and the registered lane that gave the last key, so no key comparison is followed by
    logic in the same cycle. Only a lane's first three keys shift with the decision, the rest a cycle
    later on a registered enable, and `o` has a spare entry, so neither `o.ready` nor the winner
    drives more than a lane's three head registers.
    """

    def __init__(self, *, lanes: int, depth: int, key_bits: int,
                 segments: list[tuple[int, int]] | None = None, segment_delay: int = 0):
        for name, value, lo in (("lanes", lanes, 1), ("depth", depth, 1), ("key_bits", key_bits, 1),
                                ("segment_delay", segment_delay, 0)):
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an int >= {lo}, not {value!r}")
        segments = segments or [(0, depth)]
        starts = [0] + [a + n for a, n in segments[:-1]]
        if [a for a, _ in segments] != starts or sum(n for _, n in segments) != depth or \
                (len(segments) > 1 and segments[0][1] < 3):
            raise ValueError(f"segments must tile 0..{depth - 1} in order, the first of >= 3 cells "
                             f"when there are several, not {segments!r}")
        self.lanes, self.depth, self.key_bits = lanes, depth, key_bits
        self.segments, self.segment_delay = segments, segment_delay
        super().__init__({
            "cells": In(data.ArrayLayout(data.ArrayLayout(unsigned(key_bits), depth), lanes)),
            "load": In(1),
            "o": Out(stream.Signature(data.StructLayout({"key": unsigned(key_bits), "last": unsigned(1)}))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        n, k, kb = self.lanes, self.depth, self.key_bits
        ones = (1 << kb) - 1

        # A lane's first three keys are registers (`first`, `second`, `third`) that shift when the
        # lane gives a key; the rest (`store`) shifts one cycle later, on the registered `gave`, so
        # the decision drives only the head registers and the store's shift enable is a register.
        # `third` refills from store[1] when a shift is still due (`gave`), else from store[0].
        first = [Signal(kb, init=ones, name=f"first{l}") for l in range(n)]
        second = [Signal(kb, init=ones, name=f"second{l}") for l in range(n)]
        third = [Signal(kb, init=ones, name=f"third{l}") for l in range(n)]
        store = [[Signal(kb, init=ones, name=f"store{l}_{i}") for i in range(max(0, k - 3))] for l in range(n)]

        def cell(l, i):
            return self.cells[l][i] if i < k else ones

        def stored(l, i):
            return store[l][i] if i < len(store[l]) else ones

        def beats(a, xa, b, xb):
            """Lane a's key xa sorts before lane b's key xb (ties: lower lane first)."""
            return xa <= xb if a < b else xa < xb

        # Every cycle the lanes' first two keys are compared and the results registered:
        #   h[a, b] (a < b): lane a's head sorts before lane b's head,
        #   nx[a, b] (a != b): lane a's second key sorts before lane b's head.
        # The next cycle the order of the heads follows from those bits and from which lane gave a
        # key (`gave`, registered; at most one): if a gave, a's head is its old second key, so
        # a-before-b is nx[a, b]; if b gave, it is not nx[b, a]; otherwise h[a, b]. A key
        # comparison thus only ever feeds a register, and the winner comes from registered bits.
        h = {(a, b): Signal(name=f"h{a}_{b}") for a in range(n) for b in range(n) if a < b}
        nx = {(a, b): Signal(name=f"nx{a}_{b}") for a in range(n) for b in range(n) if a != b}
        gave = [Signal(name=f"gave{l}") for l in range(n)]
        for (a, b), sig in h.items():
            m.d.sync += sig.eq(beats(a, first[a], b, first[b]))
        for (a, b), sig in nx.items():
            m.d.sync += sig.eq(beats(a, second[a], b, first[b]))
        before = {}
        for (a, b), sig in h.items():
            before[(a, b)] = Signal(name=f"before{a}_{b}")
            m.d.comb += before[(a, b)].eq(Mux(gave[a], nx[(a, b)], Mux(gave[b], ~nx[(b, a)], sig)))

        def B(a, b):
            return before[(a, b)] if a < b else ~before[(b, a)]

        win = [Signal(name=f"win{l}") for l in range(n)]
        for l in range(n):
            m.d.comb += win[l].eq(Cat(*[B(l, o) for o in range(n) if o != l], 1).all())
        head = Signal(kb)
        m.d.comb += head.eq(0)
        for l in range(n):
            with m.If(win[l]):
                m.d.comb += head.eq(first[l])

        # Output: `o` plus one spare entry. A key is taken only while the buffer will have room
        # (`room`, registered), so `o.ready` reaches no further than the buffer's own registers.
        spare = Signal(kb)
        spare_valid, spare_last, room = Signal(), Signal(), Signal(init=1)
        # Segment s of the cells is copied `segment_delay * s` cycles after `load` (a segmented
        # queue's flush wave); `hold` keeps the merge from giving keys until the last segment is in
        # and the copied heads have been compared (at least the cycle after `load`): comparing the
        # source cells at `load` would put the distant queues on the cycle path.
        # `more`: keys left to give (registered `remaining != 0`).
        lag = max(1, self.segment_delay * (len(self.segments) - 1))
        delayed = [self.load]
        for d in range(lag):
            nxt_load = Signal(name=f"load_d{d + 1}")
            m.d.sync += nxt_load.eq(delayed[-1])
            delayed.append(nxt_load)
        seg_load = {}
        for s, (start, size) in enumerate(self.segments):
            for i in range(start, start + size):
                seg_load[i] = delayed[self.segment_delay * s]
        remaining = Signal(range(k + 1))
        more, hold, pop = Signal(), Signal(), Signal()
        m.d.comb += [pop.eq(more & ~hold & room),
                     self.busy.eq(more | self.o.valid | spare_valid)]
        m.d.sync += [hold.eq(self.load | (hold & ~delayed[lag])), *[gave[l].eq(pop & win[l]) for l in range(n)]]
        with m.If(self.load):
            m.d.sync += [remaining.eq(k), more.eq(1)]
            for l in range(n):
                m.d.sync += [first[l].eq(cell(l, 0)), second[l].eq(cell(l, 1)), third[l].eq(cell(l, 2))]
        with m.Else():
            with m.If(pop):
                m.d.sync += [remaining.eq(remaining - 1), more.eq(remaining != 1)]
            for l in range(n):
                with m.If(pop & win[l]):
                    m.d.sync += [first[l].eq(second[l]), second[l].eq(third[l]),
                                 third[l].eq(Mux(gave[l], stored(l, 1), stored(l, 0)))]
        for l in range(n):
            for i, x in enumerate(store[l]):
                with m.If(seg_load[3 + i]):
                    m.d.sync += x.eq(cell(l, 3 + i))
                with m.Elif(gave[l]):
                    m.d.sync += x.eq(stored(l, i + 1))

        take = self.o.valid & self.o.ready
        o_valid, o_key, o_last = self.o.valid, self.o.payload.key, self.o.payload.last
        last = remaining == 1
        with m.If(pop & (~o_valid | (take & ~spare_valid))):
            m.d.sync += [o_valid.eq(1), o_key.eq(head), o_last.eq(last)]
        with m.Elif(take):
            m.d.sync += [o_valid.eq(spare_valid), o_key.eq(spare), o_last.eq(spare_last)]
        with m.If(pop & o_valid & ~(take & ~spare_valid)):
            m.d.sync += [spare_valid.eq(1), spare.eq(head), spare_last.eq(last)]
        with m.Elif(take):
            m.d.sync += spare_valid.eq(0)
        # entries held after this edge: (o, spare) before, + 1 given, - 1 taken; room while < 2
        held = Signal(range(4))
        m.d.comb += held.eq(o_valid + spare_valid + pop - take)
        m.d.sync += room.eq(held < 2)
        return m
