"""Latency percentiles for STATS / INFO answers: a window of the most recent samples."""
from __future__ import annotations

from collections import deque

import numpy as np


class LatencyWindow:
    """The last ``size`` latencies in seconds; ``percentiles("scan")`` -> {scan_p50_ms, scan_p90_ms, scan_p99_ms}."""

    def __init__(self, size: int = 2048):
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._samples.append(float(seconds))

    def percentiles(self, name: str) -> dict:
        if not self._samples:
            return {}
        p = np.percentile(np.fromiter(self._samples, np.float64), [50, 90, 99]) * 1e3
        return {f"{name}_p50_ms": float(p[0]), f"{name}_p90_ms": float(p[1]), f"{name}_p99_ms": float(p[2])}
