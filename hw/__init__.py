"""Amaranth generator of record for the IVF-PQ scan-and-top-K kernel (design.md section 3)."""
