"""Conformance stand-in for XRT's Python binding `pyxrt`, for tests on machines without XRT or a card.

It exposes exactly the names that XRT's pybind11 module binds in src/python/pybind11/src/pyxrt.cpp at tags
202320.2.16.204 (XRT 2023.2) and 202420.2.18.179 (XRT 2024.2), restricted to those both versions share:
module attributes, class methods and enum values (`BOUND` below; test_xrt_device.py checks the stand-in
against it, so code that calls anything else, e.g. `pyxrt.ip` or `xclbinkernel.get_args`, fails a test).
Behind the names: a card with the memory banks and compute units of a link config (hls/link/<card>.cfg),
each compute unit running the HLS kernel's C model (host/board/csim_device.py) on the card's memory.
Errors are raised as RuntimeError, as pybind11 translates XRT's std::runtime_error.

The "xclbin" is a JSON stand-in written by `write_xclbin`, not an axlf binary.
"""
from __future__ import annotations

import enum
import json
import re
import sys
import types
from pathlib import Path

import numpy as np

from host.board.csim_device import HlsCsimDevice
from host.board.soft_device import SimMemory
from host.spec import regmap
from host.spec.errors import BoardError
from host.spec.scan_params import ScanParams

BOUND = {
    "": {"xclBOSyncDirection", "ert_cmd_state", "xrt_info_device", "uuid", "hw_context", "device", "run",
         "kernel", "bo", "xclbin", "xclbinip_vector", "xclbinkernel_vector", "xclbinmem_vector"},
    "uuid": {"to_string"},
    "device": {"load_xclbin", "register_xclbin", "get_xclbin_uuid", "get_info"},
    "run": {"start", "set_arg", "wait", "state", "add_callback"},
    "kernel": {"cu_access_mode", "exclusive", "shared", "none", "group_id"},
    "bo": {"flags", "normal", "cacheable", "device_only", "host_only", "p2p", "svm", "write", "read", "sync",
           "map", "size", "address"},
    "xclbin": {"xclbinip", "xclbinkernel", "xclbinmem", "get_kernels", "get_xsa_name", "get_uuid", "get_mems",
               "get_axlf"},
    "xclbinkernel": {"get_name", "get_num_args"},
    "xclbinmem": {"get_tag", "get_base_address", "get_size_kb", "get_used", "get_index"},
}
"""Public names per scope ("" = the module), as bound at both tags."""

BANK_BYTES = {"DDR": 16 << 30, "HBM": 512 << 20, "PLRAM": 128 << 10}
PLATFORMS = {"u250": "xilinx_u250_gen3x16_xdma_4_1_202210_1", "u280": "xilinx_u280_gen3x16_xdma_1_202211_1",
             "u55c": "xilinx_u55c_gen3x16_xdma_3_202210_1"}


def write_xclbin(path: Path, link_cfg: Path, params: ScanParams, card: str, bank_bytes: dict | None = None,
                 num_args: int = len(regmap.ARG_INDEX)) -> Path:
    """A stand-in xclbin for ``card`` linked with ``link_cfg`` (nk= and sp= lines): its banks, compute units,
    the bank group of each CU argument and the kernel's build parameters."""
    text = link_cfg.read_text()
    bank_bytes = {**BANK_BYTES, **(bank_bytes or {})}
    mems, cus = [], {}
    for cu, arg, kind, lo, hi in re.findall(r"^sp=(\w+)\.(\w+):(\w+)\[(\d+)(?::(\d+))?\]$", text, re.M):
        tag = f"{kind}[{lo}]" if not hi else f"{kind}[{lo}:{hi}]"
        if tag not in [m["tag"] for m in mems]:
            count = int(hi or lo) - int(lo) + 1
            mems.append({"tag": tag, "size_kb": count * bank_bytes[kind] // 1024})
        cus.setdefault(cu, {})[arg] = [m["tag"] for m in mems].index(tag)
    nk = re.search(r"^nk=(\w+):(\d+)", text, re.M)
    desc = {"xsa": PLATFORMS[card], "kernels": [{"name": nk.group(1), "num_args": num_args}], "mems": mems,
            "cus": cus, "params": params.to_dict(), "uuid": f"{abs(hash(text)) & 0xFFFF_FFFF:08x}-anole"}
    path.write_text(json.dumps(desc))
    return path


class xclBOSyncDirection(enum.Enum):
    XCL_BO_SYNC_BO_TO_DEVICE = 0
    XCL_BO_SYNC_BO_FROM_DEVICE = 1
    XCL_BO_SYNC_BO_GMIO_TO_AIE = 2
    XCL_BO_SYNC_BO_AIE_TO_GMIO = 3


ert_cmd_state = enum.Enum("ert_cmd_state", [
    ("ERT_CMD_STATE_NEW", 1), ("ERT_CMD_STATE_QUEUED", 2), ("ERT_CMD_STATE_COMPLETED", 4),
    ("ERT_CMD_STATE_ERROR", 5), ("ERT_CMD_STATE_ABORT", 6), ("ERT_CMD_STATE_SUBMITTED", 7),
    ("ERT_CMD_STATE_TIMEOUT", 8), ("ERT_CMD_STATE_NORESPONSE", 9), ("ERT_CMD_STATE_SKERROR", 10),
    ("ERT_CMD_STATE_SKCRASHED", 11)])
xrt_info_device = enum.Enum("xrt_info_device", "bdf interface_uuid kdma max_clock_frequency_mhz m2m name nodma "
                            "offline electrical thermal mechanical memory platform pcie_info host dynamic_regions vmr")


class uuid:
    def __init__(self, text: str):
        self._text = text

    def to_string(self) -> str:
        return self._text


class hw_context:
    def __init__(self, *args):
        self._args = args


class xclbin:
    class xclbinip:
        pass

    class xclbinkernel:
        def __init__(self, desc):
            self._desc = desc

        def get_name(self):
            return self._desc["name"]

        def get_num_args(self):
            return self._desc["num_args"]

    class xclbinmem:
        def __init__(self, index, desc):
            self._index, self._desc = index, desc

        def get_tag(self):
            return self._desc["tag"]

        def get_base_address(self):
            return 0x4000_0000 * (self._index + 1)

        def get_size_kb(self):
            return self._desc["size_kb"]

        def get_used(self):
            return True

        def get_index(self):
            return self._index

    def __init__(self, filename: str):
        try:
            self._desc = json.loads(Path(filename).read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RuntimeError(f"load_axlf: Invalid xclbin file '{filename}' ({e})") from None

    def get_kernels(self):
        return [xclbin.xclbinkernel(k) for k in self._desc["kernels"]]

    def get_xsa_name(self):
        return self._desc["xsa"]

    def get_uuid(self):
        return uuid(self._desc["uuid"])

    def get_mems(self):
        return [xclbin.xclbinmem(i, m) for i, m in enumerate(self._desc["mems"])]

    def get_axlf(self):
        raise RuntimeError("the stand-in xclbin has no axlf")


xclbinip_vector, xclbinkernel_vector, xclbinmem_vector = list, list, list


class device:
    """Card ``index`` < _CARDS of platform _PLATFORM."""

    _CARDS, _PLATFORM = 1, PLATFORMS["u250"]

    def __init__(self, index: int = 0):
        if not 0 <= index < device._CARDS:
            raise RuntimeError(f"Could not open device with index '{index}'")
        self._xclbin = None
        self._memory = SimMemory()

    def load_xclbin(self, xbin):
        xbin = xclbin(xbin) if isinstance(xbin, str) else xbin
        if xbin.get_xsa_name() != device._PLATFORM:
            raise RuntimeError(f"load_axlf: Operation not permitted (xclbin for {xbin.get_xsa_name()})")
        self._xclbin, self._used = xbin, [0] * len(xbin._desc["mems"])
        self._cus = {name: HlsCsimDevice(ScanParams.from_dict(xbin._desc["params"]))
                     for name in xbin._desc["cus"]}
        for cu in self._cus.values():
            cu.memory = self._memory                 # every compute unit reaches the card's memory
        return xbin.get_uuid()

    register_xclbin = load_xclbin

    def get_xclbin_uuid(self):
        return self._xclbin.get_uuid()

    def get_info(self, key):
        return {xrt_info_device.name: "xilinx_u250_gen3x16_xdma_shell_4_1"}.get(key, "NA")


class bo:
    class flags(enum.Enum):
        normal, cacheable, device_only, host_only, p2p, svm = 0, 1 << 24, 1 << 29, 1 << 30, 1 << 31, 1 << 27

    normal, cacheable, device_only = flags.normal, flags.cacheable, flags.device_only
    host_only, p2p, svm = flags.host_only, flags.p2p, flags.svm

    def __init__(self, dev: device, size: int, flags, group: int):
        mems = dev._xclbin._desc["mems"]
        if not 0 <= group < len(mems):
            raise RuntimeError(f"No such memory bank index {group}")
        if dev._used[group] + size > mems[group]["size_kb"] * 1024:
            raise RuntimeError(f"bad_alloc: {size} bytes in {mems[group]['tag']}")
        dev._used[group] += size
        self._dev, self._group, self._size = dev, group, size
        self._sim = dev._memory.allocate((size,), np.uint8)
        self._host = np.zeros(size, np.uint8)

    def write(self, data, seek):
        raw = np.frombuffer(memoryview(data).cast("B"), np.uint8)
        self._host[seek: seek + raw.size] = raw

    def read(self, size, skip):
        return self._host[skip: skip + size].copy()

    def sync(self, direction, size=None, offset=0):
        size = self._size if size is None else size
        dev = self._dev._memory.device_bytes(self._sim.physical_address)
        if direction == xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
            dev[offset: offset + size] = self._host[offset: offset + size]
        else:
            self._host[offset: offset + size] = dev[offset: offset + size]

    def map(self):
        return memoryview(self._host)

    def size(self):
        return self._size

    def address(self):
        return self._sim.physical_address


class run:
    def __init__(self, k=None):
        self._kernel, self._args, self._state = k, {}, ert_cmd_state.ERT_CMD_STATE_NEW

    def set_arg(self, i, item):
        if isinstance(item, bo):
            want = self._kernel.group_id(i)
            if item._group != want:
                raise RuntimeError(f"bank mismatch: argument {i} of {self._kernel._cu} is connected to bank "
                                   f"{want}, the buffer is in bank {item._group}")
            item = item.address()
        self._args[i] = int(item)

    def start(self):
        names = {i: n for n, i in regmap.ARG_INDEX.items()}
        args = {names[i]: v for i, v in self._args.items()}
        try:
            self._kernel._unit.execute({n: args.get(n, 0) for n in regmap.POINTER_ARGS + regmap.SCALAR_ARGS})
            self._state = ert_cmd_state.ERT_CMD_STATE_COMPLETED
        except BoardError:
            self._state = ert_cmd_state.ERT_CMD_STATE_ERROR

    def wait(self, timeout_ms=0):
        return self._state

    def state(self):
        return self._state

    def add_callback(self, *args):
        raise RuntimeError("callbacks are not modelled by the stand-in")


class kernel:
    cu_access_mode = enum.Enum("cu_access_mode", "exclusive shared none")
    exclusive, shared, none = cu_access_mode.exclusive, cu_access_mode.shared, cu_access_mode.none

    def __init__(self, dev: device, xclbin_uuid: uuid, name: str, mode=None):
        base, _, cu = name.partition(":")
        cu = cu.strip("{}") or sorted(dev._cus)[0]
        if base not in [k.get_name() for k in dev._xclbin.get_kernels()] or cu not in dev._cus:
            raise RuntimeError(f"No compute units matching '{name}'")
        self._dev, self._cu, self._unit = dev, cu, dev._cus[cu]
        self._conn = dev._xclbin._desc["cus"][cu]

    def __call__(self, *args):
        r = run(self)
        for i, item in enumerate(args):
            r.set_arg(i, item)
        r.start()
        return r

    def group_id(self, i):
        names = {i: n for n, i in regmap.ARG_INDEX.items()}
        if names.get(i) not in self._conn:
            raise RuntimeError(f"argument {i} of {self._cu} is not a memory argument")
        return self._conn[names[i]]


def as_module() -> types.ModuleType:
    """A module object named `pyxrt` holding exactly the bound module-level names."""
    mod = types.ModuleType("pyxrt", __doc__)
    this = sys.modules[__name__]
    for name in BOUND[""]:
        setattr(mod, name, getattr(this, name))
    return mod
