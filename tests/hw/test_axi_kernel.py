"""Board kernel pieces without a simulator build: AxiReader (amaranth.sim vs a byte memory), Verilog
emission, port naming and the Vitis kernel.xml against host/spec/regmap.py."""
import random
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from amaranth.sim import Simulator

from host.spec import regmap
from host.spec.scan_params import ScanParams
from hw.axi_reader import MAX_BURST, PAGE_BYTES, AxiReader, check_burst, check_data_bits
from hw.flow.axi_verilog import TOP, emit_axi, kernel_xml
from sim.lint import lint


def _read(item_bytes, data_bits, ranges, seed=0, max_burst=16, depth=64, latency=6):
    """Run an AxiReader over `ranges` [(addr, count), ...] against a random memory that takes ARs while
    earlier bursts are still answered (`latency` cycles from AR to the first R beat, random AR and R
    stalls) and a consumer with random backpressure; return (items, want, bursts, most bursts in flight)."""
    B = data_bits // 8
    mem = np.random.default_rng(seed).integers(0, 256, 3 * PAGE_BYTES, dtype=np.uint8)
    dut = AxiReader(item_bytes=item_bytes, data_bits=data_bits, max_burst=max_burst, depth=depth)
    rng = random.Random(seed)
    total = sum(count for _, count in ranges)
    bursts, items, pending = [], [], []
    flight = {"now": 0, "max": 0}

    async def address(ctx):
        cycle = 0
        while True:
            ready = rng.random() >= 0.3
            ctx.set(dut.arready, ready)
            *_, valid, a, n = await ctx.tick().sample(dut.arvalid, dut.araddr, dut.arlen)
            cycle += 1
            if ready and valid:
                bursts.append((a, n + 1))
                pending.append((cycle + latency, a, n + 1))
                flight["now"] += 1
                flight["max"] = max(flight["max"], flight["now"])

    async def data(ctx):
        cycle = 0
        while True:
            while not pending or pending[0][0] > cycle:
                await ctx.tick()
                cycle += 1
            _, a, n = pending.pop(0)
            for i in range(n):
                while rng.random() < 0.3:
                    ctx.set(dut.rvalid, 0)
                    await ctx.tick()
                    cycle += 1
                word = int.from_bytes(mem[a + i * B: a + (i + 1) * B].tobytes(), "little")
                ctx.set(dut.rdata, word)
                ctx.set(dut.rlast, i == n - 1)
                ctx.set(dut.rvalid, 1)
                *_, rready = await ctx.tick().sample(dut.rready)
                cycle += 1
                assert rready, "R stalled although the FIFO had room for the burst"
            ctx.set(dut.rvalid, 0)
            flight["now"] -= 1

    async def host(ctx):
        for addr, count in ranges:
            ctx.set(dut.cmd.payload.addr, addr)
            ctx.set(dut.cmd.payload.count, count)
            ctx.set(dut.cmd.valid, 1)
            await ctx.tick().until(dut.cmd.ready)
        ctx.set(dut.cmd.valid, 0)

    async def sink(ctx):
        while len(items) < total:
            ready = rng.random() >= 0.3
            ctx.set(dut.o.ready, ready)
            *_, payload, valid = await ctx.tick().sample(dut.o.payload, dut.o.valid)
            if ready and valid:
                items.append(payload)
        ctx.set(dut.o.ready, 0)
        await ctx.tick().repeat(4)
        assert not ctx.get(dut.busy) and not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(address, background=True)
    sim.add_testbench(data, background=True)
    sim.add_testbench(host)     # finite: not left suspended in `until` when the simulation ends
    sim.add_testbench(sink)
    sim.run()
    want = [int.from_bytes(mem[a + i * item_bytes: a + (i + 1) * item_bytes].tobytes(), "little")
            for a, count in ranges for i in range(count)]
    return items, want, bursts, flight["max"]


@pytest.mark.parametrize("item_bytes,data_bits,ranges", [
    ([12, 64, [(4096 - 44, 40)]]),               # unaligned items wider than a word, crossing a 4 KiB page
    ([8, 128, [(8, 1)]]),                        # one descriptor in the upper half of a word
    ([96, 256, [(100 * 96, 9)]]),                # 96-byte code beats on a 256-bit bus
    ([4, 32, [(2, 0)]]),                         # count 0: no burst at all
    ([16, 64, [(40, 300), (2, 0), (4002, 7), (12, 1), (6, 60)]]),  # queued ranges: several bursts, trailing bytes
])
def test_reader_items_and_bursts(item_bytes, data_bits, ranges):
    items, want, bursts, _ = _read(item_bytes, data_bits, ranges)
    assert items == want
    B = data_bits // 8
    for a, n in bursts:
        assert a % B == 0 and 1 <= n <= 16
        assert a // PAGE_BYTES == (a + n * B - 1) // PAGE_BYTES, "burst crosses 4 KiB"
    assert sum(n for _, n in bursts) == sum(-(-(a % B + count * item_bytes) // B) for a, count in ranges if count)
    starts = [a for a, _ in bursts]
    for a, count in ranges:
        if count:
            assert a - a % B in starts
    if not any(count for _, count in ranges):
        assert bursts == []


def test_reader_keeps_bursts_in_flight():
    """A long range with latency: several bursts outstanding, never more words than the FIFO holds."""
    items, want, bursts, most = _read(16, 128, [(0, 2000)], max_burst=32, depth=128, latency=20)
    assert items == want
    assert max(n for _, n in bursts) == 32 and 2 <= most <= 128 // 32 + 1


def test_reader_checks_its_parameters():
    with pytest.raises(ValueError, match="max_burst"):
        check_burst(MAX_BURST + 1, 1024)
    with pytest.raises(ValueError, match="depth"):
        check_burst(64, 32)


def test_emit_names_ports_like_a_vitis_kernel(tmp_path):
    files = emit_axi(ScanParams(m=8, lanes=4, k=10), tmp_path, 64)
    text = files["verilog"].read_text()
    assert f"module {TOP}(" in text
    for port in ("ap_clk", "ap_rst_n", "interrupt", "s_axi_control_awaddr", "s_axi_control_rdata",
                 "m_axi_gmem0_araddr", "m_axi_gmem2_rdata", "m_axi_gmem3_wstrb", "m_axi_gmem3_bready"):
        assert f" {port};" in text, port
    assert "m_axi_gmem0_awvalid" not in text            # read-only bundles have no write channels
    assert lint(files["verilog"], TOP) == []            # verilator -Wall, generator waivers only (sim/lint.py)
    with pytest.raises(ValueError, match="data_bits"):
        check_data_bits(96)


def test_kernel_xml_matches_regmap():
    root = ET.fromstring(kernel_xml(ScanParams(), 512))
    kernel = root.find("kernel")
    assert kernel.get("name") == regmap.KERNEL_NAME and kernel.get("hwControlProtocol") == "ap_ctrl_hs"
    args = {a.get("name"): a for a in kernel.iter("arg")}
    assert list(args) == list(regmap.ARG_INDEX)
    for name, a in args.items():
        assert int(a.get("offset"), 16) == regmap.ARG_OFFSETS[name]
        assert int(a.get("id")) == regmap.ARG_INDEX[name]
        if name in regmap.POINTER_ARGS:
            assert a.get("port") == f"m_axi_{regmap.M_AXI_BUNDLES[name]}"
    ports = {p.get("name"): p for p in kernel.iter("port")}
    assert set(ports) == {"s_axi_control", "m_axi_gmem0", "m_axi_gmem1", "m_axi_gmem2", "m_axi_gmem3"}
    assert ports["m_axi_gmem1"].get("dataWidth") == "512"


def test_package_xo_without_vivado_fails_clearly(tmp_path):
    """Everything before Vivado is generated; the missing tool is named with what to install."""
    from host.cli import main
    from hw.flow.rtl_xo import ToolMissing, package_xo

    with pytest.raises(ToolMissing, match="not found on PATH.*Vivado"):
        package_xo(ScanParams(m=8, lanes=4, k=10), tmp_path, vivado="anole-no-such-vivado")
    rtl = tmp_path / "rtl"
    assert (rtl / f"{TOP}.v").exists() and (rtl / "kernel.xml").exists()
    regs = (rtl / "regs.tcl").read_text()
    assert "{codes 0x10 8 gmem0}" in regs and "{nprobe 0x54 4 {}}" in regs
    assert main(["hw", "xo", "--m", "8", "--out", str(tmp_path / "cli"), "--vivado", "anole-no-such-vivado"]) == 3
