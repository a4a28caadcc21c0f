"""TableBanks (amaranth.sim): load order, `ready` while both banks are full, acquire/release, list ids."""
from amaranth.sim import Simulator

from hw.table_banks import TableBanks


def test_two_tables_then_backpressure_then_release():
    dut = TableBanks(beats=3, list_bits=4)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.valid, 1)
        for table in (5, 9):
            ctx.set(dut.list_id, table)
            for _ in range(3):
                assert ctx.get(dut.ready)
                await ctx.tick()
        seen["full"], seen["ready"] = ctx.get(dut.full), ctx.get(dut.ready)
        seen["avail"], seen["first"] = ctx.get(dut.avail), ctx.get(dut.avail_list)
        ctx.set(dut.acquire, 1)
        await ctx.tick()
        ctx.set(dut.acquire, 0)
        seen["cur"], seen["next"] = ctx.get(dut.cur), ctx.get(dut.avail_list)
        ctx.set(dut.release, 1)
        await ctx.tick()
        ctx.set(dut.release, 0)
        await ctx.tick()
        seen["after"], seen["wbank"] = ctx.get(dut.full), ctx.get(dut.wbank)
        seen["ready_after"] = ctx.get(dut.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert (seen["full"], seen["ready"], seen["avail"], seen["first"]) == (0b11, 0, 1, 5)
    assert (seen["cur"], seen["next"]) == (0, 9)
    assert (seen["after"], seen["wbank"], seen["ready_after"]) == (0b10, 0, 1)
