"""Shift-register insertion queue: keeps the K smallest keys seen, sorted, one insert per cycle."""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class InsertionQueue(wiring.Component):
    """K cells holding the K smallest keys inserted since the last flush, ascending.

    Every cycle the key on `key` (all ones = no candidate; all ones sorts after every real key) is
    compared with all cells at once and inserted at its place, the larger cells shifting up by one;
    the largest falls off. II = 1, no stall; the cells reflect an insert one cycle later. `flush`
    empties the queue (all cells all ones) on the next edge; `cells` always shows the contents, so a
    parent can snapshot them in the flush cycle.
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
            "flush": In(1),
            "cells": Out(data.ArrayLayout(unsigned(key_bits), depth)),
        })

    def elaborate(self, platform):
        m = Module()
        ones = (1 << self.key_bits) - 1
        cells = [Signal(self.key_bits, init=ones, name=f"cell{i}") for i in range(self.depth)]
        lt = [Signal(name=f"lt{i}") for i in range(self.depth)]
        x = self.key
        for i, c in enumerate(cells):
            m.d.comb += [lt[i].eq(x < c), self.cells[i].eq(c)]
            with m.If(self.flush):
                m.d.sync += c.eq(ones)
            with m.Elif(lt[i]):
                m.d.sync += c.eq(x)
                if i > 0:
                    with m.If(lt[i - 1]):
                        m.d.sync += c.eq(cells[i - 1])
        return m
