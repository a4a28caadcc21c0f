"""Bank control of the ping-pong table memory: which bank loads, which are full, which one a list reads."""
from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class TableBanks(wiring.Component):
    """Two banks of `beats` words each: one is written by the table stream while the other is read.

    `valid` offers a table beat (of list `list_id`); `ready` (a register: the write bank is not full) takes
    it, `load` is high in that cycle, writing word `wcount` of bank `wbank`. After the last beat the bank
    is full and `wbank` moves on. `acquire` (only while `avail`) binds the next full bank, in load order,
    to the open list as `cur`; `release` frees the bound bank. `avail_list` is the list id of the next
    full bank; `full[b]`: bank b holds a whole table. A bound bank is full, so never written until it is
    released (proved in hw/formal/banks.py).
    """

    def __init__(self, *, beats: int, list_bits: int):
        self.beats, self.list_bits = beats, list_bits
        super().__init__({
            "valid": In(1), "list_id": In(list_bits), "acquire": In(1), "release": In(1),
            "ready": Out(1, init=1), "load": Out(1), "wcount": Out(range(beats)), "wbank": Out(1), "cur": Out(1),
            "avail": Out(1), "avail_list": Out(list_bits), "full": Out(2),
        })

    def elaborate(self, platform):
        m = Module()
        full = self.full
        list_of = [Signal(self.list_bits, name=f"list_of{b}") for b in range(2)]
        rbank = Signal()            # next bank to acquire
        wcount, wbank, cur, load = self.wcount, self.wbank, self.cur, self.load
        # `ready` is a register, computed from the next state of `full` and `wbank`, so the control loop is short
        last = wcount == self.beats - 1
        m.d.comb += load.eq(self.valid & self.ready)
        with m.If(load):
            m.d.sync += wcount.eq(wcount + 1)
            with m.If(last):
                m.d.sync += [wcount.eq(0), wbank.eq(~wbank)]
            with m.If(wcount == 0):
                for b in range(2):
                    with m.If(wbank == b):
                        m.d.sync += list_of[b].eq(self.list_id)

        m.d.comb += [self.avail.eq(full.bit_select(rbank, 1)),
                     self.avail_list.eq(Cat(*list_of).word_select(rbank, self.list_bits))]
        with m.If(self.acquire):
            m.d.sync += [cur.eq(rbank), rbank.eq(~rbank)]
        full_next = Signal(2)
        for b in range(2):
            set_ = load & (wbank == b) & last
            clr = self.release & (cur == b)
            m.d.comb += full_next[b].eq(set_ | (full[b] & ~clr))
        m.d.sync += [full.eq(full_next), self.ready.eq(~full_next.bit_select(wbank ^ (load & last), 1))]
        return m
