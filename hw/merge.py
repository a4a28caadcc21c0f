"""Merge of `lanes` sorted queues into one ascending stream, one result per cycle."""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


class LaneMerge(wiring.Component):
    """Copies `lanes` sorted queues of `depth` keys on `load` and emits them merged on `o`.

    `o` carries `{key, last}`; `last` marks the `depth`-th output: only the `depth` smallest keys
    of all lanes are emitted, ascending (equal keys: lower lane first). One output per cycle under
    `o.ready`; `busy` from `load` until the last output is accepted (`load` while `busy` is not
    allowed); the first output is on `o` 3 cycles after `load`. Timing: the winner is decided from
    a registered pairwise "lane a beats lane b" matrix, set up from the copied heads in the cycle
    after `load` and updated from precomputed comparisons of each lane's next head against the
    other heads, so the per-cycle path is one key comparison and a mux, independent of `lanes`.
    """

    def __init__(self, *, lanes: int, depth: int, key_bits: int):
        for name, value, lo in (("lanes", lanes, 1), ("depth", depth, 1), ("key_bits", key_bits, 1)):
            if not isinstance(value, int) or value < lo:
                raise ValueError(f"{name} must be an int >= {lo}, not {value!r}")
        self.lanes, self.depth, self.key_bits = lanes, depth, key_bits
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
        q = [[Signal(kb, init=ones, name=f"q{l}_{i}") for i in range(k)] for l in range(n)]
        remaining = Signal(range(k + 1))
        m.d.comb += self.busy.eq((remaining != 0) | self.o.valid)

        def beats(a, xa, b, xb):
            """Lane a's key xa sorts before lane b's key xb (ties: lower lane first)."""
            return xa <= xb if a < b else xa < xb

        # beat[a][b] (a != b): lane a's head sorts before lane b's head (registered)
        beat = {(a, b): Signal(name=f"beat{a}_{b}") for a in range(n) for b in range(n) if a < b}

        def B(a, b):
            return beat[(a, b)] if a < b else ~beat[(b, a)]

        win = [Signal(name=f"win{l}") for l in range(n)]
        for l in range(n):
            m.d.comb += win[l].eq(Cat(*[B(l, o) for o in range(n) if o != l], 1).all())
        head = Signal(kb)
        m.d.comb += head.eq(0)
        for l in range(n):
            with m.If(win[l]):
                m.d.comb += head.eq(q[l][0])

        # the first matrix is computed in the cycle after `load`, from the copied heads (`prime`):
        # comparing the source cells at `load` would put the distant queues on the cycle path
        prime = Signal()
        pop = Signal()
        m.d.comb += pop.eq((remaining != 0) & ~prime & (~self.o.valid | self.o.ready))
        m.d.sync += prime.eq(self.load)
        with m.If(self.load):
            m.d.sync += remaining.eq(k)
            for l in range(n):
                for i in range(k):
                    m.d.sync += q[l][i].eq(self.cells[l][i])
        with m.Elif(prime):
            for (a, b), s in beat.items():
                m.d.sync += s.eq(beats(a, q[a][0], b, q[b][0]))
        with m.Elif(pop):
            m.d.sync += remaining.eq(remaining - 1)
            for l in range(n):
                with m.If(win[l]):
                    for i in range(k):
                        m.d.sync += q[l][i].eq(q[l][i + 1] if i + 1 < k else ones)
                    nxt = q[l][1] if k > 1 else ones
                    for o in range(n):
                        if o != l:
                            p = beats(l, nxt, o, q[o][0])
                            m.d.sync += beat[(min(l, o), max(l, o))].eq(p if l < o else ~p)
        with m.If(pop):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.key.eq(head),
                         self.o.payload.last.eq(remaining == 1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
