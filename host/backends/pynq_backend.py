"""The PYNQ backend: the scan kernel in an overlay on a PYNQ board (PYNQ-Z2, ZCU104, KV260).

Options: bitstream=PATH.bit (its .hwh beside it), device="board" | "csim" (virtual board).
"""
from __future__ import annotations

from host.backends.board_backend import BoardBackend
from host.board.pynq_device import PynqDevice


class PynqBackend(BoardBackend):
    name = "pynq"

    def open_board(self, bitstream=None, download: bool = True):
        return PynqDevice(bitstream, download=download)
