"""Merge of `lanes` sorted queues into one ascending stream, one result per cycle."""
from __future__ import annotations

from amaranth import Module
from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.merge_stages import (CopySchedule, HeadOrder, LaneCopy, MergeCount, SpareOutput, check_int,
                             check_segments, entry_layout)


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

    Stages (`hw.merge_stages`): `schedule` (`CopySchedule`: segment copy strobes, `hold`), `lane<l>`
    (`LaneCopy`: a lane's head registers and store), `order` (`HeadOrder`: the registered
    comparisons, the winner and its key), `count` (`MergeCount`: keys left, `pop`, `last`) and
    `output` (`SpareOutput`: `o` and its spare entry, `room`).
    """

    def __init__(self, *, lanes: int, depth: int, key_bits: int,
                 segments: list[tuple[int, int]] | None = None, segment_delay: int = 0):
        for name, value, lo in (("lanes", lanes, 1), ("depth", depth, 1), ("key_bits", key_bits, 1),
                                ("segment_delay", segment_delay, 0)):
            check_int(name, value, lo)
        self.lanes, self.depth, self.key_bits = lanes, depth, key_bits
        self.segments, self.segment_delay = check_segments(segments, depth), segment_delay
        super().__init__({
            # one port per lane: lanes x depth x key_bits can pass Amaranth's 65,535-bit signal cap
            "cells": In(data.ArrayLayout(unsigned(key_bits), depth)).array(lanes),
            "load": In(1),
            "o": Out(stream.Signature(entry_layout(key_bits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.schedule = schedule = CopySchedule(segments=len(self.segments),
                                                        segment_delay=self.segment_delay)
        m.submodules.order = order = HeadOrder(lanes=self.lanes, key_bits=self.key_bits)
        m.submodules.count = count = MergeCount(depth=self.depth)
        m.submodules.output = output = SpareOutput(key_bits=self.key_bits)
        m.d.comb += [schedule.load.eq(self.load), count.load.eq(self.load), count.hold.eq(schedule.hold),
                     count.room.eq(output.room), output.push.eq(count.pop),
                     output.entry.key.eq(order.head), output.entry.last.eq(count.last),
                     self.busy.eq(count.more | output.busy)]
        wiring.connect(m, output.o, wiring.flipped(self.o))
        for l in range(self.lanes):
            m.submodules[f"lane{l}"] = lane = LaneCopy(depth=self.depth, key_bits=self.key_bits,
                                                       segments=self.segments)
            m.d.comb += [lane.cells.eq(self.cells[l]), lane.copy.eq(schedule.copy),
                         lane.give.eq(count.pop & order.win[l]),
                         order.first[l].eq(lane.first), order.second[l].eq(lane.second),
                         order.gave[l].eq(lane.gave)]
        return m
