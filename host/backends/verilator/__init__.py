"""The `verilator` backend: the Amaranth scan core, Verilated, driven from Python through a C++ harness."""
