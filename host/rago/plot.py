"""Figures: Pareto frontiers (TTFT vs QPS per cost), TTFT breakdowns, the iterative-retrieval sweep."""
from __future__ import annotations

from pathlib import Path

from host.rago.plan import Plan

STAGE_COLORS = {"rewriter": "tab:purple", "encoder": "tab:orange", "retrieval": "tab:blue",
                "reranker": "tab:olive", "prefix": "tab:green"}


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def frontier_axes(ax, frontiers: dict[str, list[Plan]], chosen: Plan | None = None) -> None:
    """Step plot of each frontier: x = TTFT (ms, log), y = QPS per cost unit."""
    for label, plans in frontiers.items():
        x = [p.ttft_s * 1e3 for p in plans]
        y = [p.qps_per_cost for p in plans]
        ax.step(x, y, where="post", marker="o", ms=3, label=label)
    if chosen is not None:
        ax.plot([chosen.ttft_s * 1e3], [chosen.qps_per_cost], "r*", ms=14, label="chosen plan")
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("QPS per cost unit")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def breakdown_axes(ax, plans: dict[str, Plan]) -> None:
    """Stacked horizontal bars of each plan's TTFT by stage (ms)."""
    labels = list(plans)
    for i, label in enumerate(labels):
        left = 0.0
        for stage, t in plans[label].breakdown.items():
            ax.barh(i, t * 1e3, left=left, color=STAGE_COLORS[stage], label=stage if i == 0 else None)
            left += t * 1e3
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("TTFT by stage (ms)")
    handles, names = [], []
    for ax_h, name in zip(*ax.get_legend_handles_labels()):
        if name not in names:
            handles.append(ax_h)
            names.append(name)
    ax.legend(handles, names, fontsize=8)


def sweep_axes(ax, sweep: list[dict]) -> None:
    """Iterative retrieval: QPS per cost and active decode fraction against the retrieval batch size."""
    b = [s["batch"] for s in sweep]
    ax.plot(b, [s["qps_per_cost"] for s in sweep], "o-", color="tab:blue", label="QPS per cost")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("retrieval batch size")
    ax.set_ylabel("QPS per cost unit", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(b, [s["active"] for s in sweep], "s--", color="tab:red", label="active decode fraction")
    ax2.set_ylabel("active fraction of decode slots", color="tab:red")
    ax2.set_ylim(0, 1)


def tpot_axes(ax, sweep: list[dict], without_ms: float) -> None:
    """Iterative retrieval: time per output token (stalls included) against the retrieval batch size."""
    b = [s["batch"] for s in sweep]
    ax.plot(b, [s["tpot_ms"] for s in sweep], "o-", color="tab:purple", label="with iterative retrieval")
    ax.axhline(without_ms, color="gray", ls=":", label="decode step alone")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("retrieval batch size")
    ax.set_ylabel("TPOT (ms)")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)


def plan_figure(frontier: list[Plan], chosen: Plan, out: str | Path, title: str = "") -> Path:
    """`anole rago optimize --plot`: the frontier with the chosen plan, and its TTFT breakdown."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    frontier_axes(a, {"Pareto frontier": frontier}, chosen)
    breakdown_axes(b, {"chosen": chosen, "fastest": frontier[0]})
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, out)


def finding_figure(name: str, result: dict, out: str | Path) -> Path:
    """One paradigm's figure from ``host.rago.findings`` output."""
    plt = _pyplot()
    p = result["plot"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    if "sweep" in p:
        sweep_axes(a, p["sweep"])
        tpot_axes(b, p["sweep"], result["tpot_ms_without_stalls"])
    else:
        frontier_axes(a, p["frontiers"])
        breakdown_axes(b, p["breakdown"])
    fig.suptitle(f"RAGO paradigm: {name.replace('_', ' ')}")
    fig.tight_layout()
    return _save(fig, out)


def _save(fig, out) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out
