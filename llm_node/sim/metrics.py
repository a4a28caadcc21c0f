"""SLO attainment, goodput and Tempo's service gain of a simulated (or real) run."""
from __future__ import annotations

from collections import defaultdict

from llm_node.sched.slo import dag_gain


def summarize(records, dags, span: float) -> dict:
    """records: objects with .seq (timed Sequence) and .req (its Request) and .dag_id; dags: id -> (request,
    start, [node sequences]); span: seconds of offered load. Goodput counts requests (a DAG is one request)
    that met all their SLOs, per second of span."""
    met = defaultdict(int)
    total = defaultdict(int)
    gain = 0.0
    for r in records:
        if r.dag_id is not None:
            continue
        q, slo = r.seq, r.req.slo
        kind = slo.kind.value if slo else "none"
        total[kind] += 1
        ok = q.finished and (slo is None or slo.met(q.arrival_time, q.token_times, q.finish_time))
        met[kind] += ok
        if slo is not None and q.finished:
            gain += slo.gain(q.arrival_time, q.token_times, q.finish_time)
    for req, start, seqs in dags.values():
        total["collective"] += 1
        finishes = [q.finish_time if q.finished else None for q in seqs]
        finishes += [None] * (len(req.dag) - len(seqs))
        g = dag_gain(req.slo, start, finishes)
        gain += g
        met["collective"] += g > 0
    n, m = sum(total.values()), sum(met.values())
    return {"requests": n, "met": m, "attainment": m / n if n else 0.0, "goodput": m / span,
            "service_gain": gain,
            "by_kind": {k: {"requests": total[k], "attainment": met[k] / total[k]} for k in sorted(total)}}
