"""Shift-register insertion queue: keeps the K smallest keys seen, sorted, one insert per cycle."""
from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw import split_compare


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

    def elaborate(self, platform):
        m = Module()
        ones = (1 << self.key_bits) - 1
        k = self.depth
        cells = [Signal(self.key_bits, init=ones, name=f"cell{i}") for i in range(k)]
        x = Signal(self.key_bits, init=ones)                   # the key inserted this cycle
        # registered comparison words (split_compare): lt[i] is x < cells[i]
        ltw = [Signal(3, name=f"ltw{i}") for i in range(k)]
        lt = [Signal(name=f"lt{i}") for i in range(k)]
        y, v = self.key, self.valid
        m.d.sync += x.eq(Mux(v, y, ones))
        m.d.comb += [lt[i].eq(split_compare.less(w)) for i, w in enumerate(ltw)]
        # next cycle's lt: y against the cells as they will be after this cycle's insert
        # (a key that is not valid compares as "not less" with every cell)
        before_x = split_compare.parts(y, x, enable=v)
        ahead = [split_compare.parts(y, c, enable=v) for c in cells]
        empty = split_compare.parts(y, Const(ones, self.key_bits), enable=v)
        m.d.comb += [self.cells[i].eq(c) for i, c in enumerate(cells)]
        for i, c in enumerate(cells):
            with m.If(self.flush):
                m.d.sync += [c.eq(ones), ltw[i].eq(empty)]
            with m.Elif(lt[i]):
                m.d.sync += [c.eq(x), ltw[i].eq(before_x)]
                if i > 0:
                    with m.If(lt[i - 1]):           # implies lt[i]: shift up
                        m.d.sync += [c.eq(cells[i - 1]), ltw[i].eq(ahead[i - 1])]
            with m.Else():
                m.d.sync += ltw[i].eq(ahead[i])
        return m
