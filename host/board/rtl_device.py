"""The RTL virtual board: the Amaranth AXI kernel (`anole_scan_axi`) under Verilator behind `Device`.

`RtlDevice` builds the kernel (sim/axi_kernel/runner.py), starts the simulator in a thread through
cocotb_tools.runner with the cocotb server sim/axi_kernel/rtl_server.py, and talks to it over a local
TCP socket: register reads and writes become AXI4-Lite transactions on `s_axi_control`, buffer syncs
copy bytes into / out of the AXI RAM the kernel's masters read and write. `KernelDriver` runs on it
unchanged (a launch reads the kernel's own `axi_error` register, as on a board). Slow (a few thousand kernel
cycles per second): for tests of the board path, not for serving.
"""
from __future__ import annotations

import logging
import socket
import threading

import numpy as np

from host.board.device import Buffer, MmioDevice
from host.board.soft_device import BASE_ADDRESS, PAGE
from host.spec.errors import BoardError
from host.spec.scan_params import ScanParams
from hw.flow.axi_verilog import TOP
from sim.axi_kernel import rtl_server
from sim.axi_kernel.runner import build

log = logging.getLogger(__name__)


class RtlBuffer(Buffer):
    """Host copy `array`; the device copy lives in the simulator's memory at `physical_address`."""

    def __init__(self, device: "RtlDevice", shape, dtype, address: int):
        self.array = np.zeros(shape, dtype)
        self._device, self._address = device, address

    @property
    def physical_address(self) -> int:
        return self._address

    def sync_to_device(self) -> None:
        self._device.write_mem(self._address, self.array.reshape(-1).view(np.uint8).tobytes())

    def sync_from_device(self) -> None:
        raw = self._device.read_mem(self._address, self.nbytes)
        self.array.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, np.uint8)


class RtlDevice(MmioDevice):
    """`Device` whose registers and memory are the simulated RTL kernel (data_bits: AXI4 master width)."""

    name = "rtl"

    def __init__(self, params: ScanParams, data_bits: int = 128, simulator: str = "verilator",
                 pause: float = 0.0, connect_timeout_s: float = 300.0):
        self.params = params
        self._proto = rtl_server
        runner, build_dir, jfile = build(params, data_bits, simulator)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(connect_timeout_s)
        port = listener.getsockname()[1]
        test_dir = build_dir / f"rtl_device_{port}"
        test_dir.mkdir(parents=True, exist_ok=True)
        self._failure: BaseException | None = None

        def simulate():
            try:
                runner.test(test_module="sim.axi_kernel.rtl_server", hdl_toplevel=TOP, testcase="serve",
                            build_dir=build_dir, test_dir=test_dir, log_file=test_dir / "sim.log",
                            extra_env={"ANOLE_DUT_JSON": str(jfile), "ANOLE_RTL_PORT": str(port),
                                       "ANOLE_RTL_PAUSE": str(pause)})
            except BaseException as e:          # SystemExit from the runner on a failing test
                self._failure = e

        self._thread = threading.Thread(target=simulate, name="anole-rtl-sim", daemon=True)
        self._thread.start()
        try:
            self._sock, _ = listener.accept()
        except OSError as e:
            raise BoardError(f"the RTL simulator did not connect ({e}); see {test_dir / 'sim.log'}") from e
        finally:
            listener.close()
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._log = test_dir / "sim.log"
        self._next = BASE_ADDRESS
        log.info("RTL board %s up (simulator log %s)", build_dir.name, self._log)

    def _request(self, op: int, a: int, b: int, payload: bytes = b"", reply: int | None = None) -> bytes:
        p = self._proto
        try:
            self._sock.sendall(p.FRAME.pack(op, a, b) + payload)
            return p.recv_exact(self._sock, p.REPLY.size if reply is None else reply)
        except OSError as e:
            raise BoardError(f"the RTL simulator stopped ({e}); see {self._log}") from e

    def write_reg(self, offset: int, value: int) -> None:
        self._request(self._proto.WRITE_REG, offset, value)

    def read_reg(self, offset: int) -> int:
        return self._proto.REPLY.unpack(self._request(self._proto.READ_REG, offset, 0))[0]

    def write_mem(self, address: int, data: bytes) -> None:
        self._request(self._proto.WRITE_MEM, address, len(data), data)

    def read_mem(self, address: int, nbytes: int) -> bytes:
        return self._request(self._proto.READ_MEM, address, nbytes, reply=nbytes)

    def alloc(self, shape, dtype, arg: str | None = None) -> RtlBuffer:
        buf = RtlBuffer(self, shape, dtype, self._next)
        self._next += -(-max(buf.nbytes, 1) // PAGE) * PAGE
        return buf

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._request(self._proto.CLOSE, 0, 0)
            except BoardError:
                pass
            self._sock.close()
            self._thread.join(timeout=60)
        if self._failure is not None and not isinstance(self._failure, SystemExit):
            raise BoardError(f"the RTL simulation failed: {self._failure!r}; see {self._log}")
