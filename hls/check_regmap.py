"""Compare the register map Vitis HLS generated (x<kernel>_hw.h) with host/spec/regmap.py.

    python hls/check_regmap.py PATH...

Each PATH is the header itself, a directory holding it (the csynth project, v++'s --temp_dir) or a kernel
object (.xo, a zip); the first header found is checked. Every flow target of hls/Makefile runs this.

Exit 0 when every register the driver uses sits where the driver expects it, 1 with the differences.
"""
from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from host.spec import regmap  # noqa: E402


def expected() -> dict[str, int]:
    """{define suffix: offset} as Vitis HLS names them (XANOLE_SCAN_CONTROL_ADDR_<suffix>)."""
    want = {"AP_CTRL": regmap.CTRL, "GIE": regmap.GIE, "IER": regmap.IER, "ISR": regmap.ISR}
    for name in regmap.POINTER_ARGS + regmap.SCALAR_ARGS + regmap.OUTPUT_ARGS:
        want[f"{name.upper()}_DATA"] = regmap.ARG_OFFSETS[name]
    want["CONFIG_CTRL"] = regmap.CONFIG_CTRL
    return want


def parse(text: str) -> dict[str, int]:
    prefix = f"X{regmap.KERNEL_NAME.upper()}_CONTROL_ADDR_"
    return {m.group(1): int(m.group(2), 16)
            for m in re.finditer(rf"#define\s+{prefix}(\w+)\s+0x([0-9a-fA-F]+)", text)}


def differences(text: str) -> list[str]:
    got = parse(text)
    out = []
    for name, off in expected().items():
        if name not in got:
            out.append(f"{name}: missing from the generated header (driver expects {off:#x})")
        elif got[name] != off:
            out.append(f"{name}: generated at {got[name]:#x}, driver expects {off:#x}")
    return out


def find_header(paths: list[str]) -> tuple[str, str] | None:
    """(where, text) of the first x<kernel>_hw.h in ``paths`` (files, directories, .xo archives)."""
    name = f"x{regmap.KERNEL_NAME}_hw.h"
    for path in map(Path, paths):
        if path.is_file() and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                hit = next((n for n in z.namelist() if n.endswith("/" + name)), None)
                if hit:
                    return f"{path}:{hit}", z.read(hit).decode()
        elif path.is_file():
            return str(path), path.read_text()
        elif path.is_dir():
            hit = next(iter(sorted(path.rglob(name))), None)
            if hit:
                return str(hit), hit.read_text()
    return None


def main(argv: list[str]) -> int:
    found = find_header(argv) if argv else None
    if found is None:
        print(f"check_regmap: no x{regmap.KERNEL_NAME}_hw.h in {' '.join(argv) or '(no path)'}; did the HLS "
              f"step run?", file=sys.stderr)
        return 2
    where, text = found
    argv = [where]
    diff = differences(text)
    for line in diff:
        print(f"check_regmap: {line}", file=sys.stderr)
    if diff:
        print("check_regmap: update host/spec/regmap.py and docs/board-interface.md (and the RTL wrapper)",
              file=sys.stderr)
        return 1
    print(f"check_regmap: {argv[0]} matches host/spec/regmap.py")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
