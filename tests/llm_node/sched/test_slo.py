"""SLO classes: validation, attainment, service gain; DAG validation and critical paths."""
import pytest

from llm_node.sched.slo import SLO, DagNode, Kind, SLOError, critical_path, dag_gain, validate_dag


def test_bad_slos_are_rejected_with_the_value():
    with pytest.raises(SLOError, match="needs ttft"):
        SLO(Kind.LATENCY, tbt=0.1)
    with pytest.raises(SLOError, match="-1"):
        SLO(Kind.THROUGHPUT, ttlt=-1)
    with pytest.raises(SLOError, match="inf"):
        SLO(Kind.LATENCY, ttft=float("inf"), tbt=0.1)
    with pytest.raises(ValueError):
        SLO("interactive")
    assert SLO("throughput", ttlt=2).kind is Kind.THROUGHPUT


def test_latency_met_uses_ttft_and_p90_gap():
    slo = SLO(Kind.LATENCY, ttft=1.0, tbt=0.1)
    times = [0.9 + 0.1 * i for i in range(20)]
    assert slo.met(0.0, times, times[-1])
    assert not slo.met(0.0, [1.1] + times[1:], times[-1])             # first token late
    stall = times[:10] + [t + 0.5 for t in times[10:]]                 # one long gap: p90 still fine
    assert slo.met(0.0, stall, stall[-1])
    slow = [0.9 + 0.2 * i for i in range(20)]
    assert not slo.met(0.0, slow, slow[-1])


def test_latency_gain_counts_tokens_by_their_paced_deadline():
    slo = SLO(Kind.LATENCY, ttft=1.0, tbt=0.5, weight=2.0)
    # token i due at 1 + 0.5 i: tokens 0..3 at 1, 1.5, 2.0, 3.0 -> the last is late
    assert slo.gain(0.0, [1.0, 1.5, 2.0, 3.0], 3.0) == pytest.approx(2.0 * 3 / 4)
    # faster than the pace earns no more than on time
    assert slo.gain(0.0, [0.1, 0.2, 0.3, 0.4], 0.4) == slo.gain(0.0, [1.0, 1.5, 2.0, 2.5], 2.5) == 2.0


def test_throughput_and_collective_deadlines():
    slo = SLO(Kind.THROUGHPUT, ttlt=5.0)
    assert slo.met(1.0, [2.0, 6.0], 6.0) and slo.gain(1.0, [2.0, 6.0], 6.0) == 1.0
    assert not slo.met(1.0, [2.0, 6.5], 6.5) and slo.gain(1.0, [6.5], 6.5) == 0.0
    col = SLO(Kind.COLLECTIVE, ttlt=5.0)
    assert col.met(3.0, [4.0], 5.5, start=1.0) and not col.met(3.0, [4.0], 6.5, start=1.0)
    assert dag_gain(col, 1.0, [3.0, 5.9]) == 2.0
    assert dag_gain(col, 1.0, [3.0, 6.1]) == 0.0 and dag_gain(col, 1.0, [3.0, None]) == 0.0
    assert SLO().met(0.0, [], None)  # best effort


def test_dag_validation_errors_are_clear():
    with pytest.raises(SLOError, match=r"unknown node\(s\) \['z'\]"):
        validate_dag([DagNode("a"), DagNode("b", ("z",))])
    with pytest.raises(SLOError, match=r"cycle through node\(s\) \['b', 'c'\]"):
        validate_dag([DagNode("a"), DagNode("b", ("a", "c")), DagNode("c", ("b",))])
    with pytest.raises(SLOError, match="unique"):
        validate_dag([DagNode("a"), DagNode("a")])
    with pytest.raises(SLOError, match="at least one"):
        validate_dag([])
    with pytest.raises(SLOError, match="cycle"):
        validate_dag([DagNode("a", ("a",))])


def test_topological_order_and_critical_path():
    nodes = [DagNode("sum", ("w1", "w2")), DagNode("w1", ("plan",)), DagNode("w2", ("plan",)), DagNode("plan")]
    order = validate_dag(nodes)
    assert order.index("plan") < order.index("w1") < order.index("sum") and order.index("w2") < order.index("sum")
    cp = critical_path(nodes, {"plan": 1.0, "w1": 2.0, "w2": 5.0, "sum": 1.0})
    assert cp == {"sum": 1.0, "w1": 3.0, "w2": 6.0, "plan": 7.0}
