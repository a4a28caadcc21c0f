"""cocotb verification of the emitted kernels (design.md section 4)."""
