"""Shift-register insertion queue: keeps the K smallest keys seen, sorted, one insert per cycle."""
from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw import split_compare

SEGMENT = 10          # cells per segment of a queue longer than MAX_FLAT
MAX_FLAT = 16         # queues up to this depth are one segment
SEGMENT_DELAY = 2     # cycles from one segment's flush to the next one's


def queue_segments(depth: int) -> list[tuple[int, int]]:
    """(first cell, cells) per segment: one for depth <= MAX_FLAT, else SEGMENT-cell segments."""
    if depth <= MAX_FLAT:
        return [(0, depth)]
    return [(start, min(SEGMENT, depth - start)) for start in range(0, depth, SEGMENT)]


class InsertionQueue(wiring.Component):
    """K cells holding the K smallest keys inserted since the last flush, ascending.

    A key on `key` with `valid` is registered and inserted in the next cycle at its place among
    the cells, the larger cells shifting up by one; the largest falls off (all ones = empty, sorting
    after every real key). II = 1, no stall; the cells reflect a key two cycles after it is on `key`.
    `flush` empties the queue (all cells all ones) on the next edge; `cells` always shows the
    contents, so a parent can snapshot them in the flush cycle. Timing: the comparisons of the
    incoming key with every cell are made a cycle ahead, against the cells and the key being
    inserted, and registered (as half-width parts, `split_compare`); the insert itself only muxes
    on those registered bits.

    A queue deeper than MAX_FLAT is a chain of SEGMENT-cell segments (`segments`): each keeps the
    smallest keys it sees and hands the key it pushes out to the next segment a cycle later, so a
    candidate is compared with one segment's cells, not all K. The union of the segments is still
    the K smallest keys, ascending across segments; keys reach segment s up to 2s cycles late, and
    the flush travels with them: segment s empties (and is final for the query, for a snapshot)
    SEGMENT_DELAY * s cycles after `flush`. The cycle before a flush carries no valid key.
    """

    def __init__(self, *, depth: int, key_bits: int):
        if not isinstance(depth, int) or not 1 <= depth <= 100:
            raise ValueError(f"depth must be in 1..100, not {depth!r}")
        if not isinstance(key_bits, int) or key_bits < 1:
            raise ValueError(f"key_bits must be a positive int, not {key_bits!r}")
        self.depth = depth
        self.key_bits = key_bits
        super().__init__({
            "key": In(key_bits),
            "valid": In(1),
            "flush": In(1),
            "cells": Out(data.ArrayLayout(unsigned(key_bits), depth)),
        })

    @property
    def segments(self) -> list[tuple[int, int]]:
        """(first cell, cells) of each segment, in order; see `queue_segments`."""
        return queue_segments(self.depth)

    def elaborate(self, platform):
        m = Module()
        kb = self.key_bits
        ones = (1 << kb) - 1
        y, v, flush = self.key, self.valid, self.flush
        segs = self.segments
        for s, (start, size) in enumerate(segs):
            cells, evicted = self._segment(m, s, size, y, v, flush)
            m.d.comb += [self.cells[start + i].eq(c) for i, c in enumerate(cells)]
            if s + 1 < len(segs):
                # the key this segment pushes out (or passes on) is the next segment's candidate, a
                # cycle later; the flush follows SEGMENT_DELAY cycles later, so each segment holds
                # its last key of a query when its flush arrives (all ones = nothing)
                e = Signal(kb, init=ones, name=f"evict{s}")
                m.d.sync += e.eq(evicted)
                for d in range(SEGMENT_DELAY):
                    nxt = Signal(name=f"flush{s}_{d}")
                    m.d.sync += nxt.eq(flush)
                    flush = nxt
                y, v = e, Const(1)
        return m

    def _segment(self, m, s, size, y, v, flush):
        """`size` sorted cells taking candidate `y` (when `v`); returns the cells and the key the
        insert of this cycle pushes out (the last cell, or the key being inserted itself)."""
        kb = self.key_bits
        ones = (1 << kb) - 1
        cells = [Signal(kb, init=ones, name=f"s{s}_cell{i}") for i in range(size)]
        x = Signal(kb, init=ones, name=f"s{s}_x")                  # the key inserted this cycle
        # registered comparison words (split_compare): lt[i] is x < cells[i]
        ltw = [Signal(3, name=f"s{s}_ltw{i}") for i in range(size)]
        lt = [Signal(name=f"s{s}_lt{i}") for i in range(size)]
        m.d.sync += x.eq(Mux(v, y, ones))
        m.d.comb += [lt[i].eq(split_compare.less(w)) for i, w in enumerate(ltw)]
        # next cycle's lt: y against the cells as they will be after this cycle's insert
        # (a key that is not valid compares as "not less" with every cell)
        before_x = split_compare.parts(y, x, enable=v)
        ahead = [split_compare.parts(y, c, enable=v) for c in cells]
        empty = split_compare.parts(y, Const(ones, kb), enable=v)
        for i, c in enumerate(cells):
            with m.If(flush):
                m.d.sync += [c.eq(ones), ltw[i].eq(empty)]
            with m.Elif(lt[i]):
                m.d.sync += [c.eq(x), ltw[i].eq(before_x)]
                if i > 0:
                    with m.If(lt[i - 1]):           # implies lt[i]: shift up
                        m.d.sync += [c.eq(cells[i - 1]), ltw[i].eq(ahead[i - 1])]
            with m.Else():
                m.d.sync += ltw[i].eq(ahead[i])
        return cells, Mux(lt[-1], cells[-1], x)
