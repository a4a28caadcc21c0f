"""A wide key comparison registered as three half-width results, combined after the register.

A 52-bit `a < b` is one 26-cell carry chain on ECP5; as `(a_hi < b_hi, a_hi == b_hi, a_lo < b_lo)` it
is two 13-cell chains and an equality tree side by side, half the logic depth before the register.
The register keeps the three bits; `less` rebuilds `a < b` (`a <= b` with `or_equal`) in one LUT.
"""
from __future__ import annotations

from amaranth import Cat, Value


def parts(a: Value, b: Value, *, or_equal: bool = False, enable: Value | int = 1) -> Value:
    """The 3-bit comparison word of a vs b (all zeros, i.e. "not less", where `enable` is low)."""
    a, b = Value.cast(a).as_unsigned(), Value.cast(b).as_unsigned()
    if len(a) != len(b):
        raise ValueError(f"compared values must have one width, not {len(a)} and {len(b)}")
    width = len(a)
    half = (width + 1) // 2
    lo = (a[:half] <= b[:half]) if or_equal else (a[:half] < b[:half])
    hi = a[half:] < b[half:] if width > half else Value.cast(0)
    eq = a[half:] == b[half:] if width > half else Value.cast(1)
    return Cat(hi, eq, lo) & Value.cast(enable).replicate(3)


def less(word: Value) -> Value:
    """`a < b` (or `a <= b`) from a registered comparison word of `parts`."""
    return word[0] | (word[1] & word[2])
