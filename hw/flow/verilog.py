"""Verilog emission of the scan core: `anole_scan.v` plus a JSON of its parameters and port map."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import amaranth
from amaranth.back import verilog
from amaranth.hdl import Shape

from host.spec import scan_params
from host.spec.scan_params import ScanParams
from hw.ecp5_ram import check_ram_style
from hw.interface import code_beat_layout, error_layout, result_layout, table_beat_layout, table_beats
from hw.scan_core import ScanCore, core_latency

TOP = "anole_scan"
# Verilog models of the vendor primitives a `ram` style instantiates, for simulators
ROOT = Path(__file__).resolve().parents[2]
SIM_MODELS = {"inferred": (), "ecp5": (ROOT / "sim" / "models" / "DP16KD.v",)}


def _fields(layout) -> dict:
    return {name: {"offset": f.offset, "width": Shape.cast(f.shape).width} for name, f in layout}


def port_map(params: ScanParams) -> dict:
    """Verilog port name -> direction, width and payload fields (bit offset, width)."""
    ports = {"clk": {"dir": "in", "width": 1}, "rst": {"dir": "in", "width": 1}}
    for name, layout, direction in (("table", table_beat_layout(params), "in"),
                                    ("i", code_beat_layout(params), "in"),
                                    ("o", result_layout(params), "out")):
        back = "out" if direction == "in" else "in"
        ports[f"{name}__payload"] = {"dir": direction, "width": layout.size, "fields": _fields(layout)}
        ports[f"{name}__valid"] = {"dir": direction, "width": 1}
        ports[f"{name}__ready"] = {"dir": back, "width": 1}
    ports["error"] = {"dir": "out", "width": error_layout().size, "fields": _fields(error_layout())}
    return ports


def describe(params: ScanParams, ram: str = "inferred") -> dict:
    return {"top": TOP, "params": params.to_dict(), "ram": ram, "dist_bits": params.dist_bits,
            "table_beats": table_beats(params), "latency": core_latency(params), "ports": port_map(params)}


def hashed_sources() -> list[Path]:
    """The generator sources: every module under hw/ (subpackages included) and ScanParams."""
    return [*sorted((ROOT / "hw").rglob("*.py")), Path(scan_params.__file__).resolve()]


def source_hash(params: ScanParams, ram: str = "inferred") -> str:
    """Hash of the generator sources (`hashed_sources`), the Amaranth version, the parameters and the RAM
    style: the identity of an emitted core."""
    h = hashlib.sha256(json.dumps({**params.to_dict(), "ram": ram, "amaranth": amaranth.__version__},
                                  sort_keys=True).encode())
    for src in hashed_sources():
        h.update(str(src.relative_to(ROOT)).encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]


def emit(params: ScanParams, out_dir: str | Path, ram: str = "inferred") -> tuple[Path, Path]:
    """Write `<out_dir>/anole_scan.v` and `<out_dir>/anole_scan.json`; returns both paths.

    `ram="ecp5"` instantiates ECP5 DP16KD block RAMs (simulate with `SIM_MODELS["ecp5"]`). Nothing is regenerated or rewritten while the generator sources and parameters are unchanged
    (the JSON records their hash), so simulator builds stay cached."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = vpath, jpath = out / f"{TOP}.v", out / f"{TOP}.json"
    key = source_hash(params, check_ram_style(ram))
    if vpath.exists() and jpath.exists():
        try:
            if json.loads(jpath.read_text()).get("source_hash") == key:
                return paths
        except json.JSONDecodeError:
            pass
    text = verilog.convert(ScanCore(params=params, ram=ram), name=TOP, emit_src=False)
    meta = json.dumps({**describe(params, ram), "source_hash": key}, indent=2) + "\n"
    for path, content in zip(paths, (text, meta)):
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
    return paths
