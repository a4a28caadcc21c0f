"""cocotb bench of `anole_scan`: randomized queries against host.spec.reference.scan_query.

Runs inside the simulator (started by sim/runner.py); its configuration comes from the environment:
ANOLE_DUT_JSON (the parameter/port JSON written next to the Verilog), ANOLE_BENCH (JSON: scans,
seed, mode, bubble, stall) and ANOLE_BENCH_OUT (where the summary JSON is written).
As a script: `python -m sim.scan.test_scan` runs the default bench under Verilator.
"""
from __future__ import annotations

import json
import os
import random
from collections import deque

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec, Op, code_beat_layout, result_layout, table_beat_layout
from sim.stimulus import expected_results, query_beats, random_query


class StreamSource:
    """Drives integer beats on `<prefix>__payload/valid`; idles a cycle with probability `idle`."""

    def __init__(self, dut, prefix: str, rng: random.Random, idle: float):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.rng, self.idle = rng, idle
        self.beats: deque[int] = deque()
        self.offered = False
        self.valid.value = 0

    def drive(self) -> None:
        """After a clock edge: offer the next beat (or idle)."""
        self.offered = bool(self.beats) and not (self.idle and self.rng.random() < self.idle)
        if self.offered:
            self.payload.value = self.beats[0]
        self.valid.value = int(self.offered)

    def sample(self) -> bool:
        """In ReadOnly: True when the offered beat is accepted at the coming edge."""
        if self.offered and self.ready.value:
            self.beats.popleft()
            return True
        return False


class StreamSink:
    """Accepts `o` beats with random backpressure (probability `stall` of refusing a cycle)."""

    def __init__(self, dut, prefix: str, rng: random.Random, stall: float):
        self.payload = getattr(dut, f"{prefix}__payload")
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.rng, self.stall = rng, stall
        self.accepting = False
        self.ready.value = 0

    def drive(self) -> None:
        self.accepting = not (self.stall and self.rng.random() < self.stall)
        self.ready.value = int(self.accepting)

    def sample(self) -> int | None:
        if self.accepting and self.valid.value:
            return self.payload.value.to_unsigned()
        return None


class Scoreboard:
    """Compares each query's K results with the reference model."""

    def __init__(self, params: ScanParams, codec: BeatCodec, log):
        self.params, self.codec, self.log = params, codec, log
        self.expected: deque[list[tuple[int, int]]] = deque()
        self.current: list[tuple[int, int, int]] = []
        self.queries = self.mismatches = 0

    def push(self, value: int) -> None:
        self.current.append(self.codec.unpack_result(value))
        if len(self.current) < self.params.k:
            return
        got, self.current = self.current, []
        want = self.expected.popleft()
        lasts = [last for *_, last in got]
        if [(d, i) for d, i, _ in got] != want or lasts != [0] * (self.params.k - 1) + [1]:
            self.mismatches += 1
            if self.mismatches <= 5:
                self.log.error("query %d: got %s, want %s", self.queries, got, want)
        self.queries += 1


class TB:
    """Clock, reset, the two sources, the sink and the scoreboard of one `anole_scan` instance."""

    def __init__(self, dut, cfg: dict):
        with open(os.environ["ANOLE_DUT_JSON"]) as f:
            meta = json.load(f)
        self.params = p = ScanParams.from_dict(meta["params"])
        for prefix, layout in (("table", table_beat_layout(p)), ("i", code_beat_layout(p)),
                               ("o", result_layout(p))):
            width = len(getattr(dut, f"{prefix}__payload"))
            assert width == layout.size, f"{prefix}__payload is {width} bits, params say {layout.size}"
        self.dut, self.cfg = dut, cfg
        self.codec = BeatCodec(p)
        rng = random.Random(cfg["seed"])
        self.np_rng = np.random.default_rng(cfg["seed"])
        self.table = StreamSource(dut, "table", rng, cfg["bubble"])
        self.i = StreamSource(dut, "i", rng, cfg["bubble"])
        self.o = StreamSink(dut, "o", rng, cfg["stall"])
        self.board = Scoreboard(p, self.codec, dut._log)
        self.scans = self.codes = 0
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    def add_query(self, q) -> None:
        tb, ib = query_beats(self.codec, q)
        self.table.beats.extend(tb)
        self.i.beats.extend(ib)
        self.board.expected.append(expected_results(self.params, q))
        self.scans += q.scans
        self.codes += q.codes

    async def run(self, make_query, scans: int, timeout: int) -> int:
        """Make queries until `scans` (query, list) pairs, run until all results are checked;
        returns cycles (first beat to last result)."""
        cycles = 0
        self.scan_cycles = None
        while self.scans < scans or self.board.expected:
            while self.scans < scans and len(self.board.expected) < 3:
                self.add_query(make_query())
            await RisingEdge(self.dut.clk)
            cycles += 1
            if cycles % 100_000 == 0:
                self.dut._log.info("cycle %d: %d queries checked", cycles, self.board.queries)
            assert cycles < timeout, f"no progress: {self.board.queries} queries done after {cycles} cycles"
            self.table.drive()
            self.i.drive()
            self.o.drive()
            await ReadOnly()
            self.table.sample()
            if self.i.sample() and self.scans >= scans and not self.i.beats:
                self.scan_cycles = cycles     # the last END_QUERY is accepted
            value = self.o.sample()
            if value is not None:
                self.board.push(value)
        await RisingEdge(self.dut.clk)
        return cycles

    def summary(self, cycles: int) -> dict:
        """codes_per_cycle counts the cycles until the last END_QUERY is accepted (scan rate, table
        loads included); total_codes_per_cycle also counts the final top-K drain."""
        err = self.dut.error.value.to_unsigned()
        scan = self.scan_cycles or cycles
        return {"params": self.params.to_dict(), "mode": self.cfg["mode"], "scans": self.scans,
                "queries": self.board.queries, "mismatches": self.board.mismatches,
                "errors": self.codec.unpack_error(err), "codes": self.codes, "cycles": scan, "total_cycles": cycles,
                "codes_per_cycle": self.codes / max(scan, 1),
                "total_codes_per_cycle": self.codes / max(cycles, 1),
                "lanes_fraction": self.codes / max(scan, 1) / self.params.lanes}


def _config() -> dict:
    cfg = {"scans": 200, "seed": 0, "mode": "random", "bubble": 0.2, "stall": 0.2}
    cfg.update(json.loads(os.environ.get("ANOLE_BENCH", "{}")))
    return cfg


def _write(summary: dict) -> None:
    out = os.environ.get("ANOLE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(summary, f)


@cocotb.test()
async def test_scan(dut):
    """Randomized queries (random mode) or long lists at full rate (throughput mode)."""
    cfg = _config()
    tb = TB(dut, cfg)
    p = tb.params
    if cfg["mode"] == "throughput":
        tb.table.idle = tb.i.idle = tb.o.stall = 0.0
        lengths = lambda: [int(x) for x in tb.np_rng.integers(1000, 2001, 4)]
        make = lambda: random_query(p, tb.np_rng, nprobe=4, lengths=lengths())
    else:
        # queries of 0..4 lists, lengths 0, 1, < lanes, short, long
        make = lambda: random_query(p, tb.np_rng, max_probes=4, long_len=cfg.get("long_len", 3 * p.lanes * 8))
    await tb.reset()
    cycles = await tb.run(make, cfg["scans"], timeout=cfg.get("timeout", 10_000_000))
    summary = tb.summary(cycles)
    dut._log.info("summary %s", summary)
    _write(summary)
    assert summary["mismatches"] == 0, f"{summary['mismatches']} mismatching queries"
    assert summary["errors"] == [], f"protocol errors {summary['errors']}"


@cocotb.test()
async def test_protocol_errors(dut):
    """Codes before any table, END_LIST outside a list and a wrong list id raise the error flags."""
    cfg = _config()
    tb = TB(dut, cfg)
    codec = tb.codec
    await tb.reset()
    tb.i.beats.extend(codec.code_beats(np.zeros((1, tb.params.m), np.uint8), np.array([7])))
    tb.i.beats.append(codec.op_beat(Op.END_LIST))
    q = random_query(tb.params, tb.np_rng, nprobe=1, lengths=[3])
    tbeats, ibeats = query_beats(codec, q)
    tb.table.beats.extend(codec.table_beats(q.tables[0], q.list_ids[0] ^ 1))
    tb.i.beats.extend(ibeats)
    tb.board.expected.append(expected_results(tb.params, q))
    cycles = await tb.run(lambda: None, 0, timeout=10_000)
    summary = tb.summary(cycles)
    _write(summary)
    assert summary["mismatches"] == 0
    assert set(summary["errors"]) == {"codes_outside_list", "end_outside_list", "list_mismatch"}, summary


if __name__ == "__main__":
    from sim.runner import run_bench

    print(json.dumps(run_bench(ScanParams(), "verilator", scans=200, seed=0)))
