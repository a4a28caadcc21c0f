"""`anole hw verilog|report`: emit the scan core as Verilog; resources, post-route Fmax, projected speed."""
from __future__ import annotations

import json
import sys

from host.cli.common import group
from host.spec.errors import InputError
from host.spec.scan_params import ScanParams
from hw.ecp5_ram import RAM_STYLES
from hw.flow.axi_verilog import DEFAULT_DATA_BITS
from hw.flow.report import format_report, report
from hw.flow.rtl_xo import ToolMissing, package_xo
from hw.flow.verilog import emit


def add_param_args(p) -> None:
    """Kernel parameter options shared by `anole hw ...` and `anole sim scan`."""
    d = ScanParams()
    p.add_argument("--m", type=int, default=d.m, help="sub-quantizers per code, 4..64")
    p.add_argument("--lanes", type=int, default=d.lanes, help="codes per cycle, power of two 1..16")
    p.add_argument("--lut-bits", type=int, default=d.lut_bits, help="bits per table entry, 8..16")
    p.add_argument("--k", type=int, default=d.k, help="results per query, 1..100")
    p.add_argument("--id-bits", type=int, default=d.id_bits, help="bits of a vector id, 16..64")
    p.add_argument("--list-bits", type=int, default=d.list_bits, help="bits of a list id, 1..32")


def add_ram_arg(p, default: str = "inferred") -> None:
    p.add_argument("--ram", choices=RAM_STYLES, default=default,
                   help="table block RAM: inferred (any target) or ecp5 (DP16KD with its output register; "
                        f"simulated with sim/models/DP16KD.v); default {default}")


def params_from_args(args) -> ScanParams:
    try:
        return ScanParams(m=args.m, lanes=args.lanes, lut_bits=args.lut_bits, k=args.k,
                          id_bits=args.id_bits, list_bits=args.list_bits)
    except (ValueError, TypeError) as e:
        raise InputError(str(e)) from e


def register(sub, groups) -> None:
    hw = group(sub, groups, "hw", "scan kernel hardware: Verilog, resources, timing")
    p = hw.add_parser("verilog", help="write anole_scan.v and anole_scan.json (parameters, port map)")
    add_param_args(p)
    p.add_argument("--out", required=True, help="output directory")
    add_ram_arg(p)
    p.set_defaults(func=cmd_verilog)

    p = hw.add_parser("report", help="yosys synth_xilinx resources per component vs. board budgets, "
                                     "ECP5 place & route Fmax, projected codes/s")
    add_param_args(p)
    p.add_argument("--out", default="build/hw/report", help="work directory")
    p.add_argument("--no-pnr", action="store_true", help="skip the ECP5 place & route")
    p.add_argument("--seeds", type=int, default=1,
                   help="place & route with placer seeds 1..N in parallel, report the best and all (default 1)")
    add_ram_arg(p, default="ecp5")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_report)

    p = hw.add_parser("xo", help="package anole_scan_axi as a Vitis RTL kernel (.xo; needs Vivado)")
    add_param_args(p)
    p.add_argument("--data-bits", type=int, default=DEFAULT_DATA_BITS, help="AXI4 master data width")
    p.add_argument("--out", default="build/hw/xo", help="output directory")
    p.add_argument("--vivado", default="vivado", help="Vivado executable")
    p.set_defaults(func=cmd_xo)


def cmd_verilog(args) -> int:
    vfile, jfile = emit(params_from_args(args), args.out, args.ram)
    print(json.dumps({"verilog": str(vfile), "json": str(jfile)}))
    return 0


def cmd_report(args) -> int:
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, not {args.seeds}")
    rep = report(params_from_args(args), args.out, pnr=not args.no_pnr, seeds=args.seeds,
                 ram=args.ram)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0


def cmd_xo(args) -> int:
    try:
        print(package_xo(params_from_args(args), args.out, args.data_bits, args.vivado))
    except ToolMissing as e:
        print(f"anole hw xo: {e}", file=sys.stderr)
        return 3
    return 0
