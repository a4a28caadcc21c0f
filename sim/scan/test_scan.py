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
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec, Op, code_beat_layout, result_layout, table_beat_layout
from sim.scan.coverage import ScanCoverage
from sim.scan.scoreboard import Scoreboard
from sim.stimulus import expected_results, lane_counts, query_beats, random_query
from sim.streams import HandshakeMonitor, StreamSink, StreamSource


class TB:
    """Clock, reset, the two sources, the sink, the handshake monitors of `table`, `i` and `o`, the
    coverage and the scoreboard of one `anole_scan` instance."""

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
        self.monitors = [HandshakeMonitor.of_stream(dut, name) for name in ("table", "i", "o")]
        self.coverage = ScanCoverage(p)
        self.board = Scoreboard(p, self.codec, dut._log)
        self.scans = self.codes = 0
        self.timed_out = False
        self.sim_s = 0.0
        Clock(dut.clk, 10, unit="ns").start()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def reset_mid_query(self) -> None:
        """Reset the DUT with beats and results still outstanding; the bench forgets them."""
        self.coverage.sample("reset_mid_query", bool(self.board.expected))
        self.table.clear()
        self.i.clear()
        self.board.expected.clear()
        self.board.current = []
        for mon in self.monitors:
            mon.reset()
        await self.reset()

    def add_query(self, q) -> None:
        tb, ib = query_beats(self.codec, q, self.np_rng, sparse=self.cfg.get("sparse", 0.25))
        self.table.beats.extend(tb)
        self.i.beats.extend(ib)
        want = expected_results(self.params, q)
        if self.cfg.get("inject_mismatch") and self.scans == 0:
            want[0] = (want[0][0] ^ 1, want[0][1])
        self.board.expected.append(want)
        self.coverage.sample_query([c.shape[0] for c, _ in q.lists], lane_counts(self.codec, ib))
        self.scans += q.scans
        self.codes += q.codes

    async def run(self, make_query, scans: int, timeout: int, stop_at: int | None = None) -> int:
        """Make queries until `scans` (query, list) pairs, run until all results are checked (or `stop_at`
        cycles, or the wall-clock limit `timeout_s` of the configuration); returns cycles (first beat to
        last result)."""
        cycles = 0
        self.scan_cycles = None
        ov, oo, wo = self.codec.code["valid"][0], *self.codec.code["op"]
        last_bit = self.codec.result["last"][0]
        lanes_mask = (1 << self.params.lanes) - 1
        t0, limit = time.perf_counter(), self.cfg.get("timeout_s")
        while (self.scans < scans or self.board.expected) and cycles != stop_at:
            while self.scans < scans and len(self.board.expected) < 3:
                self.add_query(make_query())
            await RisingEdge(self.dut.clk)
            cycles += 1
            if cycles % 1000 == 0 and limit and time.perf_counter() - t0 > limit:
                self.timed_out = True
                break
            if cycles % 100_000 == 0:
                self.dut._log.info("cycle %d: %d queries checked", cycles, self.board.queries)
            assert cycles < timeout, f"no progress: {self.board.queries} queries done after {cycles} cycles"
            self.table.drive()
            self.i.drive()
            self.o.drive()
            await ReadOnly()
            for mon in self.monitors:
                mon.sample()
            self.table.sample()
            beat = self.i.sample()
            if beat is not None:
                if (beat >> oo) & ((1 << wo) - 1) == Op.CODES.value:
                    self.coverage.sample_beat((beat >> ov) & lanes_mask)
                if self.scans >= scans and not self.i.beats:
                    self.scan_cycles = cycles     # the last END_QUERY is accepted
            if self.o.valid.value and (self.o.payload.value.to_unsigned() >> last_bit) & 1:
                self.coverage.sample("last_handshake", "taken" if self.o.accepting else "stalled")
            value = self.o.sample()
            if value is not None:
                self.board.push(value)
        self.sim_s += time.perf_counter() - t0
        await RisingEdge(self.dut.clk)
        return cycles

    def summary(self, cycles: int, expect_errors: bool = False) -> dict:
        """codes_per_cycle counts the cycles until the last END_QUERY is accepted (scan rate, table
        loads included); total_codes_per_cycle also counts the final top-K drain; `failed` lists what
        went wrong (mismatches, error flags, handshake violations, a timeout)."""
        errors = self.codec.unpack_error(self.dut.error.value.to_unsigned())
        self.coverage.sample_errors(errors)
        scan = self.scan_cycles or cycles
        monitors = {m.name: m.report() for m in self.monitors}
        failed = ([f"{self.board.mismatches} mismatching queries"] if self.board.mismatches else []) + \
            [msg for m in self.monitors for msg in m.messages] + (["timed out"] if self.timed_out else []) + \
            ([f"error flags {errors}"] if errors and not expect_errors else [])
        return {"params": self.params.to_dict(), "mode": self.cfg["mode"], "scans": self.scans,
                "queries": self.board.queries, "mismatches": self.board.mismatches,
                "errors": errors, "codes": self.codes, "cycles": scan, "total_cycles": cycles,
                "codes_per_cycle": self.codes / max(scan, 1),
                "total_codes_per_cycle": self.codes / max(cycles, 1),
                "lanes_fraction": self.codes / max(scan, 1) / self.params.lanes,
                "sim_s": round(self.sim_s, 3), "cycles_per_s": round(cycles / max(self.sim_s, 1e-9), 1),
                "timed_out": self.timed_out, "monitors": monitors,
                "coverage": self.coverage.report(self.dut._log), "failed": failed}


def _config() -> dict:
    cfg = {"scans": 200, "seed": 0, "mode": "random", "bubble": 0.2, "stall": 0.2}
    cfg.update(json.loads(os.environ.get("ANOLE_BENCH", "{}")))
    return cfg


def _write(summary: dict) -> None:
    out = os.environ.get("ANOLE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(summary, f)


def _random_queries(tb: TB, cfg: dict):
    """Random queries: 0..4 lists of lengths 0, 1, < lanes, short, long (throughput mode: 4 lists of
    1,000..2,000 codes at full rate); every 8th query has exactly K candidates."""
    p, rng, count = tb.params, tb.np_rng, [0]
    if cfg["mode"] == "throughput":
        tb.table.idle = tb.i.idle = tb.o.stall = 0.0
        tb.cfg["sparse"] = 0.0
        return lambda: random_query(p, rng, nprobe=4, lengths=[int(x) for x in rng.integers(1000, 2001, 4)])

    def make():
        count[0] += 1
        if count[0] % 8 == 0:
            split = int(rng.integers(0, p.k + 1))
            return random_query(p, rng, nprobe=2, lengths=[split, p.k - split])
        return random_query(p, rng, max_probes=4, long_len=cfg.get("long_len", 3 * p.lanes * 8))
    return make


def _finish(tb: TB, cycles: int, expect_errors: bool = False) -> dict:
    summary = tb.summary(cycles, expect_errors)
    tb.dut._log.info("summary %s", summary)
    _write(summary)
    return summary


@cocotb.test()
async def test_scan(dut):
    """Randomized queries (random mode) or long lists at full rate (throughput mode)."""
    cfg = _config()
    tb = TB(dut, cfg)
    make = _random_queries(tb, cfg)
    await tb.reset()
    summary = _finish(tb, await tb.run(make, cfg["scans"], timeout=cfg.get("timeout", 10_000_000)))
    assert not summary["failed"], summary["failed"]
    assert summary["errors"] == [], f"protocol errors {summary['errors']}"


@cocotb.test()
async def test_protocol_errors(dut):
    """Codes before any table, END_LIST outside a list, a wrong list id, a LIST inside a list and an
    END_QUERY inside a list raise the 5 error flags; the results of both queries stay bit-exact."""
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
    q = random_query(tb.params, tb.np_rng, nprobe=1, lengths=[5])
    tbeats, ibeats = query_beats(codec, q)            # LIST, LIST, CODES, END_QUERY: no END_LIST
    tb.table.beats.extend(tbeats)
    tb.i.beats.extend([ibeats[0], *ibeats[:-2], ibeats[-1]])
    tb.board.expected.append(expected_results(tb.params, q))
    summary = _finish(tb, await tb.run(lambda: None, 0, timeout=20_000), expect_errors=True)
    assert not summary["failed"], summary["failed"]
    assert set(summary["errors"]) == set(tb.coverage.points["error_flag"]), summary


@cocotb.test()
async def test_reset_mid_query(dut):
    """A reset while a query is scanned (or its results drain) loses it and nothing else: the error
    flags are clear and the next queries are bit-exact."""
    cfg = _config()
    tb = TB(dut, cfg)
    make = _random_queries(tb, cfg)
    await tb.reset()
    for stop in (40, 300):
        await tb.run(make, tb.scans + 50, timeout=1_000_000, stop_at=stop)
        assert tb.board.expected, "the reset must come with a query outstanding"
        await tb.reset_mid_query()
        assert tb.dut.error.value.to_unsigned() == 0 and not tb.dut.o__valid.value
    summary = _finish(tb, await tb.run(make, tb.scans + cfg["scans"], timeout=1_000_000))
    assert not summary["failed"], summary["failed"]
    assert summary["errors"] == [] and summary["queries"] > 0, summary


if __name__ == "__main__":
    from sim.runner import run_bench

    print(json.dumps(run_bench(ScanParams(), "verilator", scans=200, seed=0)))
