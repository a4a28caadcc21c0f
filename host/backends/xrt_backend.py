"""The XRT backend: the scan kernel on an Alveo card (U250, U280, U55C) through pyxrt.

Options: xclbin=PATH, card=INDEX (default 0), device="board" | "csim" (virtual board).
"""
from __future__ import annotations

from host.backends.board_backend import BoardBackend
from host.board.xrt_device import XrtDevice


class XrtBackend(BoardBackend):
    name = "xrt"

    def open_board(self, xclbin=None, card: int = 0):
        return XrtDevice(xclbin, index=card)
