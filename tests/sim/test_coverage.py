"""The bins of sim/scan/coverage.py: mask and length classes, segment reach."""
from __future__ import annotations

import pytest

from host.spec.scan_params import ScanParams
from sim.scan.coverage import ScanCoverage, length_class, mask_class


@pytest.mark.parametrize("mask, lanes, want", [(0b1111, 4, "full"), (0b0111, 4, "prefix"), (0b0001, 4, "prefix"),
                                               (0b0101, 4, "sparse"), (0b1000, 4, "sparse"), (0, 4, "none"),
                                               (1, 1, "full")])
def test_mask_class(mask, lanes, want):
    assert mask_class(mask, lanes) == want


@pytest.mark.parametrize("n, want", [(0, "0"), (1, "1"), (3, "under_lanes"), (4, "short"), (32, "short"),
                                     (33, "long")])
def test_length_class(n, want):
    assert length_class(n, 4) == want


def test_queue_reach_bins_follow_the_segments():
    cov = ScanCoverage(ScanParams(k=30, lanes=2))
    assert cov.points["queue_reach"] == ["segment0", "segment1", "segment2", "overflow"]
    cov.sample_query([25, 0], [13, 12])            # busiest lane: 13 keys, cell 12 is in segment 1
    cov.sample_query([70], [35, 35])
    hits = cov.hits("queue_reach")
    assert hits["segment1"] == 1 and hits["overflow"] == 1 and hits["segment0"] == 0
    other = ScanCoverage(ScanParams(k=5, lanes=2))          # its own tree, its own bins
    assert other.points["queue_reach"] == ["segment0", "overflow"] and other.hits("queue_reach")["overflow"] == 0
