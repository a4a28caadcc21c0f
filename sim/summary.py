"""What a scan-bench summary (sim/scan/test_scan.py, `anole sim scan --json`) says about the RTL kernel's rate."""
from __future__ import annotations

import json
from pathlib import Path

from host.spec.errors import InputError


def read_scan_summary(path: str | Path) -> dict:
    """{lanes, codes_per_cycle, efficiency, mode, source} of a bench summary JSON; InputError naming what is
    wrong when it is unreadable, not a scan-bench summary, or a run with mismatches."""
    try:
        d = json.loads(Path(path).read_text())
        lanes, cpc = int(d["params"]["lanes"]), float(d["codes_per_cycle"])
    except OSError as e:
        raise InputError(f"cannot read RTL summary {path}: {e.strerror}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path} is not a scan-bench summary (needs params.lanes, codes_per_cycle): {e!r}") from None
    if d.get("mismatches", 0):
        raise InputError(f"{path}: the RTL bench had {d['mismatches']} mismatches; not a valid measurement")
    if not 0 < cpc <= lanes:
        raise InputError(f"{path}: codes_per_cycle {cpc} is not in (0, lanes={lanes}]")
    return {"lanes": lanes, "codes_per_cycle": cpc, "efficiency": cpc / lanes, "mode": d.get("mode", "?"),
            "source": str(path)}
