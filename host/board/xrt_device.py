"""An Alveo card through XRT's pyxrt: the kernel's registers via `xrt::ip`, buffers as XRT BOs in the
memory bank each argument is linked to (hls/link/<card>.cfg)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from host.board.device import Buffer, Device
from host.spec import regmap
from host.spec.errors import BoardError

NO_XRT = ("the xrt backend needs XRT's Python binding pyxrt ({}): install XRT 2023.2+ and the card's "
          "platform (docs/deployment.md), then `source /opt/xilinx/xrt/setup.sh`; use device='csim' for "
          "the virtual board on a machine without a card")


class XrtBuffer(Buffer):
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


class XrtDevice(Device):
    """Compute unit ``<kernel>_1`` of ``xclbin`` on card ``index`` (user-managed register access)."""

    name = "xrt"

    def __init__(self, xclbin: str | Path | None, index: int = 0, kernel: str = regmap.KERNEL_NAME):
        try:
            import pyxrt
        except ImportError as e:
            raise BoardError(NO_XRT.format(e)) from None
        if xclbin is None or not Path(xclbin).is_file():
            raise BoardError(f"the xrt backend needs xclbin=PATH (built by `make -C hls link`), not {xclbin!r}")
        try:
            self.device = pyxrt.device(index)
        except RuntimeError as e:
            raise BoardError(f"no Alveo card {index} ({e}); check `xbutil examine`") from None
        xbin = pyxrt.xclbin(str(xclbin))
        self.uuid = self.device.load_xclbin(xbin)
        self.ip = pyxrt.ip(self.device, self.uuid, f"{kernel}:{{{kernel}_1}}")
        self._groups = self._memory_groups(xbin, kernel)
        self._pyxrt = pyxrt

    @staticmethod
    def _memory_groups(xbin, kernel: str) -> dict[str, int]:
        """{argument name: memory bank index} from the xclbin's connectivity."""
        groups = {}
        for k in xbin.get_kernels():
            if k.get_name() != kernel:
                continue
            for arg in k.get_args():
                mems = arg.get_mems()
                if mems:
                    groups[arg.get_name()] = mems[0].get_index()
        return groups

    def write_reg(self, offset: int, value: int) -> None:
        self.ip.write_register(offset, int(value))

    def read_reg(self, offset: int) -> int:
        return int(self.ip.read_register(offset))

    def alloc(self, shape, dtype, arg: str | None = None) -> XrtBuffer:
        nbytes = max(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, 1)
        bo = self._pyxrt.bo(self.device, nbytes, self._pyxrt.bo.normal, self._groups.get(arg, 0))
        buf = XrtBuffer(self._pyxrt, bo, shape, dtype)
        buf.array[...] = 0
        return buf
