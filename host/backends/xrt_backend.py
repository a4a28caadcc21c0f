"""The XRT backend: the scan kernel on an Alveo card (U250, U280, U55C) through pyxrt.

Options: xclbin=PATH, card=INDEX (default 0), cus=N (0: every compute unit in the xclbin),
device="board" | "csim" | "rtl" (virtual boards).
"""
from __future__ import annotations

from host.backends.board_backend import BoardBackend
from host.board.xrt_device import open_card


class XrtBackend(BoardBackend):
    name = "xrt"

    def open_board(self, cus: int = 0, xclbin=None, card: int = 0):
        return open_card(xclbin, index=card, cus=cus)
