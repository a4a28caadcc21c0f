"""Fault injection on the software boards: AXI error responses as the RTL kernel reports them."""
from __future__ import annotations

import pytest

from host.board.soft_device import SoftDevice


def inject_axi_error(unit: SoftDevice, bits: int, run: int = 0) -> None:
    """Make launch ``run`` (0-based) of ``unit`` end with ``bits`` in `axi_error` and its results scrambled,
    as when the RTL kernel's masters get SLVERR/DECERR and carry on with the data as it came."""
    execute = unit.execute

    def faulty(args: dict[str, int]) -> dict[str, int]:
        out = execute(args)
        if unit.runs != run:
            return out
        results = unit.memory.device_bytes(args["results"])
        results ^= 0x5A
        return {**out, "axi_error": bits}

    unit.execute = faulty


@pytest.fixture
def axi_fault():
    return inject_axi_error
