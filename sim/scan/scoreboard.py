"""The scan bench's scoreboard: each query's K results against the reference model's."""
from __future__ import annotations

from collections import deque

from host.spec.scan_params import ScanParams
from hw.interface import BeatCodec


class Scoreboard:
    """Compares each query's K results with the reference model."""

    def __init__(self, params: ScanParams, codec: BeatCodec, log):
        self.params, self.codec, self.log = params, codec, log
        self.expected: deque[list[tuple[int, int]]] = deque()
        self.current: list[tuple[int, int, int]] = []
        self.queries = self.mismatches = 0

    def push(self, value: int) -> None:
        self.current.append(self.codec.unpack_result(value))
        if len(self.current) < self.params.k:
            return
        got, self.current = self.current, []
        want = self.expected.popleft()
        lasts = [last for *_, last in got]
        if [(d, i) for d, i, _ in got] != want or lasts != [0] * (self.params.k - 1) + [1]:
            self.mismatches += 1
            if self.mismatches <= 5:
                self.log.error("query %d: got %s, want %s", self.queries, got, want)
        self.queries += 1
