"""The stages of `hw.merge.LaneMerge`: copy schedule, lane copies, head order, countdown, output entry."""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


def check_int(name: str, value, lo: int) -> None:
    """Raise ValueError unless `value` is an int >= `lo`."""
    if not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, not {value!r}")


def check_segments(segments: list[tuple[int, int]] | None, depth: int) -> list[tuple[int, int]]:
    """`segments` ((first cell, cells) each; None: one segment) checked to tile 0..depth-1 in order."""
    segments = segments or [(0, depth)]
    starts = [0] + [a + n for a, n in segments[:-1]]
    if [a for a, _ in segments] != starts or sum(n for _, n in segments) != depth or \
            (len(segments) > 1 and segments[0][1] < 3):
        raise ValueError(f"segments must tile 0..{depth - 1} in order, the first of >= 3 cells "
                         f"when there are several, not {segments!r}")
    return segments


def entry_layout(key_bits: int) -> data.StructLayout:
    """One merge output: a key and whether it is the last of the merge."""
    return data.StructLayout({"key": unsigned(key_bits), "last": unsigned(1)})


class CopySchedule(wiring.Component):
    """When each segment of the lane queues is copied after `load`, and how long the merge holds.

    `copy[s]` is `load` delayed by `segment_delay * s` cycles (`copy[0]` is `load` itself). `hold`
    is high for `lag = max(1, segment_delay * (segments - 1))` cycles, from the cycle after `load`:
    until the last segment is copied and the copied heads have been compared (at least the cycle
    after `load`), so comparing the source cells at `load` never puts them on a cycle path.
    """

    def __init__(self, *, segments: int, segment_delay: int):
        check_int("segments", segments, 1)
        check_int("segment_delay", segment_delay, 0)
        self.segments, self.segment_delay = segments, segment_delay
        self.lag = max(1, segment_delay * (segments - 1))
        super().__init__({"load": In(1), "copy": Out(segments), "hold": Out(1)})

    def elaborate(self, platform):
        m = Module()
        delayed = [self.load]
        for d in range(self.lag):
            nxt_load = Signal(name=f"load_d{d + 1}")
            m.d.sync += nxt_load.eq(delayed[-1])
            delayed.append(nxt_load)
        m.d.comb += self.copy.eq(Cat(*[delayed[self.segment_delay * s] for s in range(self.segments)]))
        m.d.sync += self.hold.eq(self.load | (self.hold & ~delayed[self.lag]))
        return m


class LaneCopy(wiring.Component):
    """One lane's copy of a sorted queue of `depth` keys, given away smallest first.

    The first three keys are registers (`first`, `second`, a third); the rest (the store) shifts a
    cycle after them, on `gave` (`give` registered), so `give` drives only the three head registers
    and the store's shift enable is a register. On `copy[s]` the cells of segment s are copied on the
    next edge (the head registers with segment 0). On `give` (not with `copy[0]`) the heads shift on
    the next edge: `first` takes `second`, `second` the third, the third the next stored key (store[1]
    while the store's shift is still due, `gave`, else store[0]). Keys past `depth` read all ones.
    """

    def __init__(self, *, depth: int, key_bits: int, segments: list[tuple[int, int]] | None = None):
        check_int("depth", depth, 1)
        check_int("key_bits", key_bits, 1)
        self.depth, self.key_bits = depth, key_bits
        self.segments = check_segments(segments, depth)
        ones = (1 << key_bits) - 1
        super().__init__({
            "cells": In(data.ArrayLayout(unsigned(key_bits), depth)),
            "copy": In(len(self.segments)),
            "give": In(1),
            "first": Out(key_bits, init=ones),
            "second": Out(key_bits, init=ones),
            "gave": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        k, kb = self.depth, self.key_bits
        ones = (1 << kb) - 1
        third = Signal(kb, init=ones)
        store = [Signal(kb, init=ones, name=f"store{i}") for i in range(max(0, k - 3))]
        segment_of = {i: s for s, (start, size) in enumerate(self.segments) for i in range(start, start + size)}

        def cell(i):
            return self.cells[i] if i < k else ones

        def stored(i):
            return store[i] if i < len(store) else ones

        m.d.sync += self.gave.eq(self.give)
        with m.If(self.copy[0]):
            m.d.sync += [self.first.eq(cell(0)), self.second.eq(cell(1)), third.eq(cell(2))]
        with m.Elif(self.give):
            m.d.sync += [self.first.eq(self.second), self.second.eq(third),
                         third.eq(Mux(self.gave, stored(1), stored(0)))]
        for i, x in enumerate(store):
            with m.If(self.copy[segment_of[3 + i]]):
                m.d.sync += x.eq(cell(3 + i))
            with m.Elif(self.gave):
                m.d.sync += x.eq(stored(i + 1))
        return m


class HeadOrder(wiring.Component):
    """Which of `lanes` lanes' heads sorts first (equal keys: the lower lane), from registered bits.

    Every cycle it registers, for lanes a < b, whether a's `first` sorts before b's (`h`), and for
    a != b whether a's `second` sorts before b's `first` (`nx`). `win` (one-hot when right) and `head`
    (the winner's `first`) follow combinationally from those bits and `gave`: if a gave, a-before-b is
    nx[a, b]; if b gave, not nx[b, a]; else h[a, b]. They are right in a cycle when at the edge
    before at most one lane's heads changed, by giving its head with its `gave` high; after another
    change (a copy) from the second cycle on. No key comparison is followed by logic in its cycle.
    """

    def __init__(self, *, lanes: int, key_bits: int):
        check_int("lanes", lanes, 1)
        check_int("key_bits", key_bits, 1)
        self.lanes, self.key_bits = lanes, key_bits
        keys = data.ArrayLayout(unsigned(key_bits), lanes)
        super().__init__({"first": In(keys), "second": In(keys), "gave": In(lanes),
                          "win": Out(lanes), "head": Out(key_bits)})

    def elaborate(self, platform):
        m = Module()
        n, first, second, gave = self.lanes, self.first, self.second, self.gave

        def beats(a, xa, b, xb):
            """Lane a's key xa sorts before lane b's key xb (ties: lower lane first)."""
            return xa <= xb if a < b else xa < xb

        h = {(a, b): Signal(name=f"h{a}_{b}") for a in range(n) for b in range(n) if a < b}
        nx = {(a, b): Signal(name=f"nx{a}_{b}") for a in range(n) for b in range(n) if a != b}
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

        for l in range(n):
            m.d.comb += self.win[l].eq(Cat(*[B(l, o) for o in range(n) if o != l], 1).all())
        m.d.comb += self.head.eq(0)
        for l in range(n):
            with m.If(self.win[l]):
                m.d.comb += self.head.eq(first[l])
        return m


class MergeCount(wiring.Component):
    """Counts the `depth` keys of a merge down and says in which cycles one is taken.

    `load` sets `depth` keys to go on the next edge; `more` (a register) is high while keys are left.
    `pop` (`more & ~hold & room`) takes a key in its cycle; `last` is high when that key would be
    the `depth`-th. `more` falls on the edge after the last `pop`.
    """

    def __init__(self, *, depth: int):
        check_int("depth", depth, 1)
        self.depth = depth
        super().__init__({"load": In(1), "hold": In(1), "room": In(1),
                          "pop": Out(1), "last": Out(1), "more": Out(1)})

    def elaborate(self, platform):
        m = Module()
        remaining = Signal(range(self.depth + 1))
        m.d.comb += [self.pop.eq(self.more & ~self.hold & self.room), self.last.eq(remaining == 1)]
        with m.If(self.load):
            m.d.sync += [remaining.eq(self.depth), self.more.eq(1)]
        with m.Elif(self.pop):
            m.d.sync += [remaining.eq(remaining - 1), self.more.eq(remaining != 1)]
        return m


class SpareOutput(wiring.Component):
    """The output stream `o` (a register) plus one spare entry, so `o.ready` drives only these.

    An `entry` with `push` is allowed only in a cycle when `room` is high (a register: fewer than two
    entries held). It is on `o` the next cycle when `o` is empty or taken now with the spare empty,
    else it waits in the spare, which moves to `o` when `o` is taken. `busy`: an entry is held.
    """

    def __init__(self, *, key_bits: int):
        check_int("key_bits", key_bits, 1)
        self.key_bits = key_bits
        super().__init__({"push": In(1), "entry": In(entry_layout(key_bits)), "room": Out(1, init=1),
                          "o": Out(stream.Signature(entry_layout(key_bits))), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        push, entry, o = self.push, self.entry, self.o
        spare = Signal(entry_layout(self.key_bits))
        spare_valid = Signal()
        take = o.valid & o.ready
        m.d.comb += self.busy.eq(o.valid | spare_valid)
        with m.If(push & (~o.valid | (take & ~spare_valid))):
            m.d.sync += [o.valid.eq(1), o.payload.eq(entry)]
        with m.Elif(take):
            m.d.sync += [o.valid.eq(spare_valid), o.payload.eq(spare)]
        with m.If(push & o.valid & ~(take & ~spare_valid)):
            m.d.sync += [spare_valid.eq(1), spare.eq(entry)]
        with m.Elif(take):
            m.d.sync += spare_valid.eq(0)
        # entries held after this edge: (o, spare) before, + 1 pushed, - 1 taken; room while < 2
        held = Signal(range(4))
        m.d.comb += held.eq(o.valid + spare_valid + push - take)
        m.d.sync += self.room.eq(held < 2)
        return m
