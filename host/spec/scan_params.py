"""Kernel parameters: the one object every IVF-PQ component (RTL, HLS, reference, backends) takes."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from host.spec.errors import InputError

KSUB = 256
"""Centroids per sub-quantizer: codes are 8-bit (design.md section 2)."""


@dataclass(frozen=True, slots=True)
class ScanParams:
    """Parameters of the IVF-PQ scan-and-top-K kernel.

    m:        sub-quantizers per code (bytes per PQ code), 4..64
    lanes:    codes scanned per cycle, a power of two in 1..16
    lut_bits: bits of one quantized table entry, 8..16
    k:        results kept per query, 1..100
    id_bits:  width of a vector id in the kernel, 16..64
    list_bits: width of an IVF list id in the kernel, 1..32
    """

    m: int = 16
    lanes: int = 4
    lut_bits: int = 16
    k: int = 10
    id_bits: int = 32
    list_bits: int = 16

    def __post_init__(self):
        _check_range("m", self.m, 4, 64)
        _check_range("lanes", self.lanes, 1, 16)
        if self.lanes & (self.lanes - 1):
            raise InputError(f"lanes must be a power of two, not {self.lanes!r}")
        _check_range("lut_bits", self.lut_bits, 8, 16)
        _check_range("k", self.k, 1, 100)
        _check_range("id_bits", self.id_bits, 16, 64)
        _check_range("list_bits", self.list_bits, 1, 32)

    @property
    def ksub(self) -> int:
        return KSUB

    @property
    def lut_max(self) -> int:
        """Largest quantized table entry, 2**lut_bits - 1."""
        return (1 << self.lut_bits) - 1

    @property
    def dist_bits(self) -> int:
        """Width of an ADC distance: the sum of m entries never overflows it."""
        return self.lut_bits + math.ceil(math.log2(self.m))

    @property
    def max_id(self) -> int:
        return (1 << self.id_bits) - 1

    @property
    def max_lists(self) -> int:
        return 1 << self.list_bits

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScanParams":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown ScanParams fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def _check_range(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an int, not {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name} must be in {lo}..{hi}, not {value!r}")
