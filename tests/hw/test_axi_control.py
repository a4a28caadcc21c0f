"""ControlRegs (amaranth.sim): the AXI_ERROR register's sticky response-error bits."""
from amaranth.sim import Simulator

from host.spec import regmap
from hw.axi_control import ControlRegs


async def lite_write(ctx, dut, addr, data):
    ctx.set(dut.awaddr, addr)
    ctx.set(dut.wdata, data)
    ctx.set(dut.wstrb, 0xF)
    ctx.set(dut.awvalid, 1)
    ctx.set(dut.wvalid, 1)
    ctx.set(dut.bready, 1)
    await ctx.tick().until(dut.awready)
    ctx.set(dut.awvalid, 0)
    ctx.set(dut.wvalid, 0)
    await ctx.tick().until(dut.bvalid)


async def lite_read(ctx, dut, addr):
    ctx.set(dut.araddr, addr)
    ctx.set(dut.arvalid, 1)
    ctx.set(dut.rready, 1)
    await ctx.tick().until(dut.arready)
    ctx.set(dut.arvalid, 0)
    *_, data = await ctx.tick().sample(dut.rdata)
    return data


def test_response_errors_are_sticky_until_the_next_start():
    dut = ControlRegs(config_value=0x1234)
    seen = []

    async def tb(ctx):
        seen.append(await lite_read(ctx, dut, regmap.AXI_ERROR))
        for pin in (dut.read_error, dut.write_error):
            ctx.set(pin, 1)
            await ctx.tick()
            ctx.set(pin, 0)
            await ctx.tick()
            seen.append(await lite_read(ctx, dut, regmap.AXI_ERROR))
        await lite_write(ctx, dut, regmap.CTRL, regmap.AP_START)
        await ctx.tick().repeat(2)
        seen.append(await lite_read(ctx, dut, regmap.AXI_ERROR))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    read, write = regmap.AXI_ERROR_READ, regmap.AXI_ERROR_WRITE
    assert seen == [0, read, read | write, 0]
