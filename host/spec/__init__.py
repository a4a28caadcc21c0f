"""The contract every part of anole builds on: kernel parameters (`ScanParams`), errors, the board's
register map and memory layout, and the integer reference model of a scan. Imports nothing else of anole."""
