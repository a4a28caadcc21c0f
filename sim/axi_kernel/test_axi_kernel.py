"""cocotb bench of `anole_scan_axi`: the board kernel on an AXI RAM holding a real index image.

cocotbext-axi models the host (AxiLiteMaster on `s_axi_control`) and the memory (one AxiRamRead /
AxiRamWrite per `m_axi_<bundle>` over one shared sparse memory, with random pauses on every AXI
channel). Each launch of sim/axi_kernel/case.py is placed at 64-bit page-aligned addresses, started
through the register map of host/spec/regmap.py and its results compared bit-exactly with the
reference (host.spec.reference.scan_query) after `host.spec.layout.KernelLayout.unpack_results`.

Configuration from the environment (set by `run` below): ANOLE_DUT_JSON, ANOLE_CASE (the .npz),
ANOLE_BENCH (JSON: seed, pause, latency: AR to first R beat of the read memories in cycles, 0 = the
cocotbext-axi model as it is; slverr_launch: the launch whose first R beat answers SLVERR, -1 none: its
AXI_ERROR read bit must be set, and cleared by the next launch) and ANOLE_BENCH_OUT (summary JSON).
As a script: `python -m sim.axi_kernel.test_axi_kernel` runs one parameter set under Verilator.
"""
from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from host.spec import regmap
from host.spec.layout import RESULT_BYTES, KernelLayout
from host.spec.scan_params import ScanParams
from sim.axi_kernel.monitors import axi_monitors

BASE = 0x1_0000_0000
"""First buffer address: above 4 GiB, so the high halves of the pointer registers matter."""
PAGE = 4096


def pause_generator(rng: random.Random, prob: float):
    while True:
        yield rng.random() < prob


def latency_ram_read(latency: int, fault: dict | None = None):
    """An AxiRamRead whose R data of a burst starts `latency` cycles after its AR at the earliest while
    it keeps taking ARs, as a pipelined memory does (cocotbext-axi's model answers an AR within a few
    cycles and takes the next AR only after the previous burst's last R beat is queued). While
    `fault["armed"]`, the next R beat (of any instance sharing `fault`) answers SLVERR, with its data."""
    from collections import deque

    from cocotbext.axi import AxiRamRead

    class LatencyRamRead(AxiRamRead):
        async def _process_read(self):
            ars, cycle = deque(), [0]

            async def intake():
                while True:
                    ar = await self.ar_channel.recv()
                    ars.append((cycle[0] + latency, ar))

            async def count():
                while True:
                    await RisingEdge(self.clock)
                    cycle[0] += 1

            tasks = [cocotb.start_soon(intake()), cocotb.start_soon(count())]
            try:
                while True:
                    while not ars or ars[0][0] > cycle[0]:
                        await RisingEdge(self.clock)
                    _, ar = ars.popleft()
                    n, size = int(ar.arlen) + 1, 1 << int(ar.arsize)
                    assert size == self.byte_lanes and int(ar.arburst) == 1, "the kernel reads full-width INCR"
                    addr = int(ar.araddr)
                    assert 0x1000 - (addr & 0xFFF) >= n * size, "burst crosses 4 KiB"
                    for i in range(n):
                        r = self.r_channel._transaction_obj()
                        r.rid, r.rlast = int(ar.arid), i == n - 1
                        r.rresp = 2 if fault is not None and fault.pop("armed", False) else 0
                        r.rdata = int.from_bytes(await self._read(addr + i * size, size), "little")
                        await self.r_channel.send(r)
            finally:
                for t in tasks:
                    t.cancel()

    return LatencyRamRead


class TB:
    """Clock, reset, the AXI4-Lite host and the shared AXI RAM of every master bundle."""

    def __init__(self, dut, desc: dict, rng: random.Random, pause: float, latency: int = 0,
                 fault: dict | None = None):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiRamRead, AxiRamWrite, AxiReadBus, AxiWriteBus
        from cocotbext.axi.sparse_memory import SparseMemory

        self.dut, self.log = dut, dut._log
        dut.ap_rst_n.value = 0             # before the first edge: no X in the registers (Icarus)
        cocotb.start_soon(Clock(dut.ap_clk, 4, unit="ns").start())
        clk, rst = dut.ap_clk, dut.ap_rst_n
        self.host = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), clk, rst, reset_active_level=False)
        self.mem = SparseMemory(1 << 40)       # len() of the memory must fit a Py_ssize_t
        self.slaves = []
        ram_read = latency_ram_read(max(latency, 1), fault) if latency or fault is not None else AxiRamRead
        for bundle in desc["m_axi"]:
            prefix = f"m_axi_{bundle}"
            self.slaves.append(ram_read(AxiReadBus.from_prefix(dut, prefix), clk, rst, reset_active_level=False,
                                          mem=self.mem))
            if regmap.M_AXI_BUNDLES["results"] == bundle:
                self.slaves.append(AxiRamWrite(AxiWriteBus.from_prefix(dut, prefix), clk, rst,
                                               reset_active_level=False, mem=self.mem))
        if pause:
            for slave in self.slaves:
                for name in ("ar_channel", "r_channel", "aw_channel", "w_channel", "b_channel"):
                    if hasattr(slave, name):
                        getattr(slave, name).set_pause_generator(pause_generator(rng, pause))
        self.next_addr = BASE
        self.monitors = axi_monitors(dut, desc)
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Every AXI4 / AXI4-Lite channel: valid held and payload stable until the handshake (after reset)."""
        while True:
            await RisingEdge(self.dut.ap_clk)
            await ReadOnly()
            for mon in self.monitors:
                mon.sample() if self.dut.ap_rst_n.value else mon.reset()

    async def reset(self) -> None:
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    def place(self, data: np.ndarray) -> int:
        """Copy an array into memory at the next page-aligned address; returns the address."""
        addr = self.next_addr
        raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8).tobytes()
        self.mem[addr:addr + len(raw)] = raw
        self.next_addr += -(-max(len(raw), 1) // PAGE) * PAGE + PAGE
        return addr

    async def launch(self, buffers: dict[str, int], nq: int, nprobe: int) -> int:
        """Program the registers, start, poll CTRL until ap_done; returns the cycles it ran."""
        assert await self.host.read_dword(regmap.CTRL) & regmap.AP_IDLE
        for name, addr in buffers.items():
            await self.host.write_dword(regmap.ARG_OFFSETS[name], addr & 0xFFFF_FFFF)
            await self.host.write_dword(regmap.ARG_OFFSETS[name] + 4, addr >> 32)
        await self.host.write_dword(regmap.ARG_OFFSETS["nq"], nq)
        await self.host.write_dword(regmap.ARG_OFFSETS["nprobe"], nprobe)
        self.cycles = 0
        counter = cocotb.start_soon(self._count())
        await self.host.write_dword(regmap.CTRL, regmap.AP_START)
        while True:
            ctrl = await self.host.read_dword(regmap.CTRL)
            if ctrl & regmap.AP_DONE:
                break
            assert ctrl & regmap.AP_START and not ctrl & regmap.AP_IDLE, f"CTRL {ctrl:#x} while running"
        counter.cancel()
        assert ctrl & regmap.AP_IDLE and ctrl & regmap.AP_READY, f"CTRL {ctrl:#x} at done"
        assert await self.host.read_dword(regmap.CTRL) == regmap.AP_IDLE, "ap_done/ap_ready not cleared on read"
        return self.cycles

    async def _count(self) -> None:
        while True:
            await RisingEdge(self.dut.ap_clk)
            self.cycles += 1


@cocotb.test()
async def test_launches(dut):
    """Every launch of the case: results bit-exact, handshake, config, interrupt status."""
    desc = json.loads(open(os.environ["ANOLE_DUT_JSON"]).read())
    bench = json.loads(os.environ.get("ANOLE_BENCH", "{}"))
    params = ScanParams.from_dict(desc["params"])
    lay = KernelLayout(params)
    case = np.load(os.environ["ANOLE_CASE"])
    fault_launch, fault = bench.get("slverr_launch", -1), {}
    tb = TB(dut, desc, random.Random(bench.get("seed", 0)), bench.get("pause", 0.3), bench.get("latency", 0),
            fault if fault_launch >= 0 else None)
    await tb.reset()
    await tb.host.write_dword(regmap.IER, 1)
    await tb.host.write_dword(regmap.GIE, 1)
    shard = {"codes": tb.place(case["codes"]), "ids": tb.place(case["ids"])}
    summary = {"launches": [], "mismatches": 0, "codes": 0, "cycles": 0, "axi_error": []}
    for i in range(int(case["nlaunch"])):
        tables, lists = case[f"L{i}_tables"], case[f"L{i}_lists"]
        nq, nprobe = lists.shape
        results = np.full((max(nq, 1) * params.k, RESULT_BYTES), 0xA5, np.uint8)
        bufs = {**shard, "tables": tb.place(tables), "lists": tb.place(lists), "results": tb.place(results)}
        fault["armed"] = i == fault_launch and nq > 0
        cycles = await tb.launch(bufs, nq, nprobe)
        summary["axi_error"].append(await tb.host.read_dword(regmap.AXI_ERROR))
        raw = np.frombuffer(tb.mem[bufs["results"]:bufs["results"] + results.nbytes], np.uint8)
        dist, ids = lay.unpack_results(raw, nq)
        bad = int((dist != case[f"L{i}_dist"]).sum() + (ids != case[f"L{i}_ids"]).sum())
        if nq == 0:
            bad += int((raw != 0xA5).sum())              # nq = 0 writes nothing
        pad = raw.reshape(-1, RESULT_BYTES)[: nq * params.k, 12:]
        bad += int(pad.any())
        ncodes = int((lists >> np.uint64(32)).sum())
        summary["launches"].append({"nq": nq, "nprobe": nprobe, "cycles": cycles, "codes": ncodes, "bad": bad})
        summary["mismatches"] += bad
        summary["codes"] += ncodes
        summary["cycles"] += cycles
        if bad:
            tb.log.error("launch %d: %d mismatches\n got %s %s\nwant %s %s", i, bad, dist, ids,
                         case[f"L{i}_dist"], case[f"L{i}_ids"])
        isr = await tb.host.read_dword(regmap.ISR)
        assert isr == 1 and dut.interrupt.value == 1, f"ISR {isr:#x} after launch {i}"
        await tb.host.write_dword(regmap.ISR, 1)
        assert await tb.host.read_dword(regmap.ISR) == 0 and dut.interrupt.value == 0
    summary["config"] = await tb.host.read_dword(regmap.ARG_OFFSETS["config"])
    summary["config_ok"] = summary["config"] == lay.config_word
    summary["config_vld"] = [await tb.host.read_dword(regmap.CONFIG_CTRL) for _ in range(2)]
    summary["nprobe_readback"] = await tb.host.read_dword(regmap.ARG_OFFSETS["nprobe"])
    summary["codes_per_cycle"] = round(summary["codes"] / max(summary["cycles"], 1), 3)
    summary["monitors"] = {m.name: m.report() for m in tb.monitors}
    summary["violations"] = [msg for m in tb.monitors for msg in m.messages]
    out = os.environ.get("ANOLE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(summary, f)
    assert summary["mismatches"] == 0, summary
    assert summary["config_ok"] and summary["config_vld"] == [1, 0], summary
    want = [regmap.AXI_ERROR_READ if i == fault_launch else 0 for i in range(int(case["nlaunch"]))]
    assert summary["axi_error"] == want and summary["violations"] == [], summary


if __name__ == "__main__":
    from sim.axi_kernel.runner import main

    raise SystemExit(main())
