"""`anole sim scan`: the randomized cocotb bench of anole_scan for any kernel parameters."""
from __future__ import annotations

import json
import math

from host.cli.common import group
from host.cli.hw import add_param_args, add_ram_arg, params_from_args
from host.spec.errors import InputError
from sim.runner import run_bench


def register(sub, groups) -> None:
    sim = group(sub, groups, "sim", "cocotb simulation of the scan kernel")
    p = sim.add_parser("scan", help="randomized bench vs. the reference model (JSON summary)")
    add_param_args(p)
    p.add_argument("--scans", type=int, default=1000, help="(query, list) pairs to check")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    p.add_argument("--mode", choices=("random", "throughput"), default="random",
                   help="random: bubbles, backpressure, edge-case lists; throughput: lists of "
                        "1000..2000 codes at full rate")
    p.add_argument("--bubble", type=float, default=0.2, help="input idle probability (random mode)")
    p.add_argument("--stall", type=float, default=0.2, help="output backpressure probability (random mode)")
    add_ram_arg(p)
    p.add_argument("--timeout-s", type=float, default=None,
                   help="wall-clock limit of the simulation in seconds (the build not counted)")
    p.add_argument("--waves", action="store_true", help="record waves (same as ANOLE_WAVES=1; a failing run "
                                                        "records them on its own)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_scan)


def _check_args(args) -> None:
    if args.scans < 1:
        raise InputError(f"--scans must be >= 1, not {args.scans}")
    for name in ("bubble", "stall"):
        value = getattr(args, name)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise InputError(f"--{name} is a probability in [0, 1), not {value}")
    if args.timeout_s is not None and not (math.isfinite(args.timeout_s) and args.timeout_s > 0):
        raise InputError(f"--timeout-s must be a positive number of seconds, not {args.timeout_s}")


def cmd_scan(args) -> int:
    _check_args(args)
    summary = run_bench(params_from_args(args), args.simulator, scans=args.scans, seed=args.seed,
                        mode=args.mode, bubble=args.bubble, stall=args.stall, waves=args.waves or None,
                        ram=args.ram, timeout_s=args.timeout_s)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['scans']} scans, {summary['mismatches']} mismatching queries, "
              f"{summary['codes']} codes in {summary['cycles']} cycles = "
              f"{summary['codes_per_cycle']:.3f} codes/cycle ({summary['lanes_fraction']:.3f} x lanes), "
              f"{summary['cycles_per_s']:,.0f} cycles/s"
              + (f"; TIMED OUT after {args.timeout_s:g} s" if summary["timed_out"] else ""))
        for line in summary["failed"]:
            print(f"failed: {line}")
        for path in summary.get("waves", []):
            print(f"waves: {path}")
    return 1 if summary["failed"] or summary["errors"] else 0
