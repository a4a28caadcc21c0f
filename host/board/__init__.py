"""FPGA board drivers: an MMIO/buffer device layer (`Device`), the scan kernel's driver (`KernelDriver`)
and the devices under it: PYNQ and XRT boards, and software boards that run the kernel's C model."""
