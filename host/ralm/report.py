"""Per-step latency breakdown of RALM requests, the projected scan time on an FPGA, and a plot."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sim.summary import read_scan_summary

log = logging.getLogger(__name__)

RETRIEVAL = ("embed", "queue", "coarse", "network", "scan", "merge")
GENERATION = ("prefill", "decode")


def latency_table(steps: list[dict], out, title: str) -> dict:
    """Mean seconds per step of every stage present in ``steps`` (the RalmResult.steps of many requests)."""
    means = {}
    for key in RETRIEVAL + ("retrieval",) + GENERATION:
        xs = [s[key] for s in steps if key in s]
        if xs:
            means[key] = float(np.mean(xs))
    means["per_step"] = {k: float(np.sum([s.get(k, 0.0) for s in steps]) / max(len(steps), 1))
                         for k in RETRIEVAL + GENERATION}       # the mean step's time by stage (the plot)
    batch = [s["batch"] for s in steps if "batch" in s]
    retr = " + ".join(f"{k} {means[k] * 1e3:.2f}" for k in RETRIEVAL if k in means)
    gen = ", ".join(f"{k} {means[k] * 1e3:.1f}" for k in GENERATION if k in means)
    out(f"  latency ({title}, mean of {len(steps)} steps, ms): retrieval {means.get('retrieval', 0) * 1e3:.2f} "
        f"[{retr}]; generation [{gen}]" + (f"; mean retrieval batch {np.mean(batch):.1f} queries" if batch else ""))
    return means


def fpga_projection(before: list[dict], after: list[dict], lanes: int, clock_mhz: float,
                    rtl_summary: str | Path | None = None, backend: str = "cpu") -> dict:
    """Scan time per query on the FPGA kernel: the codes each memory node scanned per query (from the nodes'
    T_STATS counters between two snapshots) / (codes per cycle x clock); nodes scan in parallel. Codes per
    cycle: the simulated kernel cycles when the nodes scan on the RTL (T_STATS ``kernel_cycles``, the verilator
    backend), else measured by the RTL bench (``rtl_summary``, a `anole sim scan --json` output) when given,
    else the kernel's ideal ``lanes`` (II = 1)."""
    queries = max(a["queries"] - b["queries"] for a, b in zip(after, before))
    if queries <= 0:
        return {"line": "no queries scanned; no FPGA projection"}
    codes = max(a["codes"] - b["codes"] for a, b in zip(after, before)) / queries
    cpu_s = max(a["scan_s"] - b["scan_s"] for a, b in zip(after, before)) / queries
    cpc, source = float(lanes), f"ideal {lanes} codes/cycle (lanes={lanes}, II=1)"
    if rtl_summary and Path(rtl_summary).is_file():
        rtl = read_scan_summary(rtl_summary)
        cpc, source = rtl["codes_per_cycle"], f"{rtl['codes_per_cycle']:.2f} codes/cycle measured by the RTL bench"
    if all("kernel_cycles" in a for a in after):    # the RTL scanned: its simulated cycles, not a model
        cycles = max(a["kernel_cycles"] - b.get("kernel_cycles", 0) for a, b in zip(after, before)) / queries
        cpc, source = codes / max(cycles, 1e-9), f"{cycles:,.0f} simulated kernel cycles per query (RTL in the loop)"
    fpga_s = codes / (cpc * clock_mhz * 1e6)
    line = (f"FPGA projection: {codes:,.0f} codes per query on the busiest node; at {clock_mhz:g} MHz and {source} "
            f"the scan takes {fpga_s * 1e6:.1f} us/query vs {cpu_s * 1e6:.1f} us/query measured on the "
            f"{backend} backend (amortized over batches)")
    return {"codes_per_query": codes, "codes_per_cycle": cpc, "clock_mhz": clock_mhz, "fpga_scan_s": fpga_s,
            "cpu_scan_s": cpu_s, "line": line}


def plot_latency(results: dict, path: str | Path) -> Path:
    """A stacked bar per flow: the mean step's time by stage (stages a step lacks count as 0)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flows = [f for f in ("type2", "type1") if f in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    stages = [s for s in RETRIEVAL + GENERATION if any(results[f]["per_step"].get(s) for f in flows)]
    bottom = np.zeros(len(flows))
    for s in stages:
        v = np.array([results[f]["per_step"].get(s, 0.0) * 1e3 for f in flows])
        ax.bar(flows, v, bottom=bottom, label=s)
        bottom += v
    if "fpga" in results and "fpga_scan_s" in results["fpga"]:
        ax.set_title(f"RALM step latency (projected FPGA scan {results['fpga']['fpga_scan_s'] * 1e6:.1f} us/query)")
    ax.set_ylabel("ms per step (mean)")
    ax.legend()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
