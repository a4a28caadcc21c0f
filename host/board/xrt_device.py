"""An Alveo card through XRT's Python binding pyxrt, using only what pyxrt binds (XRT 2023.2 / 2024.2).

`open_card` loads the xclbin, checks that it holds the `anole_scan` kernel with this version's arguments,
and opens every compute unit `anole_scan_<i>` as its own `pyxrt.kernel`. Buffers are `pyxrt.bo`s in the
memory bank each argument of that unit is linked to (`kernel.group_id(arg)`, hls/link/<card>.cfg); a launch
is `run = kernel(bo..., nq, nprobe)` then `run.wait(ms)`. pyxrt binds no register access, so the `config`
output register is not read on XRT; the xclbin's kernel name and argument count are checked instead. Nor is
the RTL kernel's `axi_error` register: a bus fault shows only as far as XRT sees it, in the run's state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from host.board.device import Buffer, Device
from host.spec import regmap
from host.spec.errors import BoardError

NO_XRT = ("the xrt backend needs XRT's Python binding pyxrt ({}): install XRT 2023.2+ and the card's "
          "platform (docs/deployment.md), then `source /opt/xilinx/xrt/setup.sh` (pyxrt is built for the "
          "distribution's Python); use device='csim' for the virtual board on a machine without a card")
MAX_CUS = 32


def import_pyxrt():
    try:
        import pyxrt
    except ImportError as e:
        raise BoardError(NO_XRT.format(e)) from None
    return pyxrt


class XrtBuffer(Buffer):
    """A `pyxrt.bo` mapped into the host: `array` views `bo.map()`."""

    def __init__(self, pyxrt, bo, shape, dtype):
        self._pyxrt = pyxrt
        self.bo = bo
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        self.array = np.frombuffer(bo.map(), dtype=dtype, count=count).reshape(shape)

    @property
    def physical_address(self) -> int:
        return int(self.bo.address())

    def sync_to_device(self) -> None:
        self.bo.sync(self._pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, self.nbytes, 0)

    def sync_from_device(self) -> None:
        self.bo.sync(self._pyxrt.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE, self.nbytes, 0)


class XrtComputeUnit(Device):
    """Compute unit ``cu`` (e.g. anole_scan_1) of the kernel in the loaded xclbin."""

    name = "xrt"

    def __init__(self, pyxrt, device, uuid, cu: str, banks: dict[int, tuple[str, int]]):
        self._pyxrt, self._device, self.cu, self._banks = pyxrt, device, cu, banks
        self.kernel = pyxrt.kernel(device, uuid, f"{regmap.KERNEL_NAME}:{{{cu}}}")
        self.name = f"xrt:{cu}"

    def alloc(self, shape, dtype, arg: str | None = None) -> XrtBuffer:
        nbytes = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
        group = self.kernel.group_id(regmap.ARG_INDEX[arg or "results"])
        tag, size = self._banks.get(group, (f"bank {group}", 0))
        if size and nbytes > size:
            raise BoardError(f"{self.cu}.{arg}: {nbytes} bytes do not fit {tag} ({size} bytes); split the index "
                             f"into more shards (anole index build --shards) or use more compute units")
        try:
            bo = self._pyxrt.bo(self._device, nbytes, self._pyxrt.bo.normal, group)
        except RuntimeError as e:
            raise BoardError(f"{self.cu}.{arg}: cannot allocate {nbytes} bytes in {tag} ({e}); split the index "
                             f"into more shards") from None
        buf = XrtBuffer(self._pyxrt, bo, shape, dtype)
        buf.array[...] = 0
        return buf

    def launch(self, buffers: dict[str, Buffer], nq: int, nprobe: int, timeout_s: float) -> None:
        run = self.kernel(*[buffers[n].bo for n in regmap.POINTER_ARGS], int(nq), int(nprobe))
        state = run.wait(max(1, int(timeout_s * 1000)))        # run.state() once done, or ..._TIMEOUT
        states = self._pyxrt.ert_cmd_state
        if state == states.ERT_CMD_STATE_TIMEOUT:
            raise BoardError(f"{self.cu}: the kernel did not finish within {timeout_s} s ({nq} queries x {nprobe} "
                             f"probes); check `xbutil examine -r all`")
        if state != states.ERT_CMD_STATE_COMPLETED:
            raise BoardError(f"{self.cu}: the kernel run ended in {state} ({nq} queries x {nprobe} probes); this "
                             f"launch's results are discarded: check the buffer placement (memory banks of the "
                             f"link config) and `xbutil examine -r all`")
        return None


def _check_kernel(pyxrt, xclbin: Path):
    """The xclbin object; refuses a file that is not an xclbin or has another kernel (version)."""
    try:
        xbin = pyxrt.xclbin(str(xclbin))
    except RuntimeError as e:
        raise BoardError(f"{xclbin} is not a loadable xclbin ({e}); build it with `make -C hls link`") from None
    kernels = {k.get_name(): k for k in xbin.get_kernels()}
    if regmap.KERNEL_NAME not in kernels:
        raise BoardError(f"{xclbin} holds kernels {sorted(kernels)}, not {regmap.KERNEL_NAME}; wrong xclbin")
    nargs = kernels[regmap.KERNEL_NAME].get_num_args()
    if nargs != len(regmap.ARG_INDEX):
        raise BoardError(f"{xclbin}: {regmap.KERNEL_NAME} has {nargs} arguments, this version's has "
                         f"{len(regmap.ARG_INDEX)}; rebuild the xclbin from this version (make -C hls link)")
    return xbin


def open_card(xclbin: str | Path | None, index: int = 0, cus: int = 0) -> list[XrtComputeUnit]:
    """The compute units anole_scan_1 .. anole_scan_N of ``xclbin`` on card ``index`` (``cus`` > 0: that many)."""
    pyxrt = import_pyxrt()
    if xclbin is None or not Path(xclbin).is_file():
        raise BoardError(f"the xrt backend needs xclbin=PATH (built by `make -C hls link`), not {xclbin!r}")
    xbin = _check_kernel(pyxrt, Path(xclbin))
    try:
        device = pyxrt.device(index)
    except RuntimeError as e:
        raise BoardError(f"no Alveo card {index} ({e}); check `xbutil examine`") from None
    try:
        uuid = device.load_xclbin(xbin)
    except RuntimeError as e:
        raise BoardError(f"card {index} refused {xclbin} ({e}); is it built for this card's platform "
                         f"({xbin.get_xsa_name()})?") from None
    banks = {m.get_index(): (m.get_tag(), m.get_size_kb() * 1024) for m in xbin.get_mems()}
    units = []
    for i in range(1, (cus or MAX_CUS) + 1):
        try:
            units.append(XrtComputeUnit(pyxrt, device, uuid, f"{regmap.KERNEL_NAME}_{i}", banks))
        except RuntimeError:
            if cus:
                raise BoardError(f"{xclbin}: {cus} compute units asked, it has {len(units)}") from None
            break
    if not units:
        raise BoardError(f"{xclbin}: no compute unit {regmap.KERNEL_NAME}_1 (link with nk={regmap.KERNEL_NAME}:N)")
    return units
