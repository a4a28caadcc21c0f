"""Compare the register map Vitis HLS generated (x<kernel>_hw.h) with host/spec/regmap.py.

    python hls/check_regmap.py build/hls/<tag>/<board>/anole_scan_prj/.../xanole_scan_hw.h

Exit 0 when every register the driver uses sits where the driver expects it, 1 with the differences.
"""
from __future__ import annotations

import re
import sys
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


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: check_regmap.py PATH/xanole_scan_hw.h (csynth did not produce one?)", file=sys.stderr)
        return 2
    diff = differences(Path(argv[0]).read_text())
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
