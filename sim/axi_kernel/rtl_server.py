"""cocotb side of the RTL virtual board (host/board/rtl_device.py): serves register and memory requests.

The simulator connects to ANOLE_RTL_PORT on localhost and answers framed requests (`FRAME`: op u8,
a u64, b u64, then b payload bytes for WRITE_MEM) until CLOSE. Registers go through the AXI4-Lite
master on `s_axi_control`, memory is the AXI RAM of the bench (`TB`). Simulated time advances only
while a request runs; a read of CTRL first lets `POLL_CYCLES` clock cycles pass, as a board would
between two polls of the driver.
"""
from __future__ import annotations

import json
import os
import random
import socket
import struct

import cocotb
from cocotb.triggers import ClockCycles

from host.spec import regmap
from sim.axi_kernel.test_axi_kernel import TB

FRAME = struct.Struct("<BQQ")
WRITE_REG, READ_REG, WRITE_MEM, READ_MEM, CLOSE = range(5)
REPLY = struct.Struct("<Q")
POLL_CYCLES = 256


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the host closed the RTL board connection")
        buf += chunk
    return bytes(buf)


@cocotb.test()
async def serve(dut):
    """Answer the host's requests until CLOSE."""
    desc = json.loads(open(os.environ["ANOLE_DUT_JSON"]).read())
    tb = TB(dut, desc, random.Random(0), float(os.environ.get("ANOLE_RTL_PAUSE", "0")))
    await tb.reset()
    sock = socket.create_connection(("127.0.0.1", int(os.environ["ANOLE_RTL_PORT"])))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            op, a, b = FRAME.unpack(recv_exact(sock, FRAME.size))
            if op == WRITE_REG:
                await tb.host.write_dword(a, b)
                sock.sendall(REPLY.pack(0))
            elif op == READ_REG:
                if a == regmap.CTRL:
                    await ClockCycles(dut.ap_clk, POLL_CYCLES)
                sock.sendall(REPLY.pack(await tb.host.read_dword(a)))
            elif op == WRITE_MEM:
                tb.mem[a:a + b] = recv_exact(sock, b)
                sock.sendall(REPLY.pack(0))
            elif op == READ_MEM:
                sock.sendall(bytes(tb.mem[a:a + b]))
            elif op == CLOSE:
                sock.sendall(REPLY.pack(0))
                break
            else:
                raise ValueError(f"unknown RTL board request {op}")
    finally:
        sock.close()
