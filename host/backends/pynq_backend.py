"""The PYNQ backend: the scan kernel in an overlay on a PYNQ board (PYNQ-Z2, ZCU104, KV260).

Options: bitstream=PATH.bit (its .hwh beside it), download=True, cus=N (0: every kernel in the overlay),
device="board" | "csim" | "rtl" (virtual boards).
"""
from __future__ import annotations

from host.backends.board_backend import BoardBackend
from host.board.pynq_device import open_overlay


class PynqBackend(BoardBackend):
    name = "pynq"

    def open_board(self, cus: int = 0, bitstream=None, download: bool = True, pynq_device=None):
        return open_overlay(bitstream, download=download, cus=cus, device=pynq_device)
