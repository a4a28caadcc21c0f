"""Functional coverage of the `anole_scan` bench (cocotb-coverage): what the stimulus and the DUT did.

Cover points (under `scan<n>.`, one tree per `ScanCoverage`): lane-mask pattern of the accepted CODES
beats (full, prefix, sparse), list length classes, candidates of a query against K, the queue segment
the busiest lane reached, `last` offered under backpressure and taken, each of the 5 sticky error flags,
and a reset in the middle of a query.
"""
from __future__ import annotations

import itertools

from cocotb_coverage.coverage import CoverPoint, coverage_db

from host.spec.scan_params import ScanParams
from hw.interface import error_layout
from hw.priority_queue import queue_segments

ERROR_FLAGS = [name for name, _ in error_layout()]
_instances = itertools.count()


def mask_class(mask: int, lanes: int) -> str:
    full = (1 << lanes) - 1
    if mask == full:
        return "full"
    if mask == 0:
        return "none"
    return "prefix" if mask & (mask + 1) == 0 else "sparse"


def length_class(n: int, lanes: int) -> str:
    if n <= 1:
        return str(n)
    if n < lanes:
        return "under_lanes"
    return "long" if n > 8 * lanes else "short"


class ScanCoverage:
    """The cover points of one bench run for `params`; `sample_*` methods feed them, `report` reads them."""

    def __init__(self, params: ScanParams):
        p = self.params = params
        masks = ["full"] + (["prefix", "sparse"] if p.lanes > 1 else [])
        lengths = ["0", "1"] + (["under_lanes"] if p.lanes > 2 else []) + ["short", "long"]
        self.segments = queue_segments(p.k)
        reach = [f"segment{s}" for s in range(len(self.segments))] + ["overflow"]
        self.points = {
            "lane_mask": masks, "list_length": lengths, "candidates_vs_k": ["fewer", "equal", "more"],
            "queue_reach": reach, "last_handshake": ["stalled", "taken"], "error_flag": ERROR_FLAGS,
            "reset_mid_query": [True],
        }
        self.root = f"scan{next(_instances)}"
        self._sample = {name: CoverPoint(f"{self.root}.{name}", bins=bins)(lambda value: None)
                        for name, bins in self.points.items()}

    def sample(self, point: str, value) -> None:
        self._sample[point](value)

    def hits(self, point: str) -> dict:
        """{bin: hits} of a cover point."""
        return dict(coverage_db[f"{self.root}.{point}"].detailed_coverage)

    def sample_beat(self, mask: int) -> None:
        self.sample("lane_mask", mask_class(mask, self.params.lanes))

    def sample_query(self, list_lengths: list[int], lane_counts: list[int]) -> None:
        """A query's lists (codes each) and candidates per lane."""
        k = self.params.k
        for n in list_lengths:
            self.sample("list_length", length_class(n, self.params.lanes))
        total = sum(list_lengths)
        self.sample("candidates_vs_k", "fewer" if total < k else "equal" if total == k else "more")
        busiest = max(lane_counts, default=0)
        if busiest > k:
            self.sample("queue_reach", "overflow")
        elif busiest:
            cell = busiest - 1
            self.sample("queue_reach", next(f"segment{s}" for s, (a, n) in enumerate(self.segments) if cell < a + n))

    def sample_errors(self, flags: list[str]) -> None:
        for flag in flags:
            self.sample("error_flag", flag)

    def report(self, log) -> dict[str, float]:
        """Log the bins; {cover point: percent of its bins hit}."""
        coverage_db.report_coverage(log.info, bins=True, node=self.root)
        return {name: round(coverage_db[f"{self.root}.{name}"].cover_percentage, 1) for name in self.points}
