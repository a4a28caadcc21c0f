"""Policy decisions on the engine's Scheduler: chunk budgets, split choice, preemption order, Tempo's keys."""
import pytest

from llm_node.engine.block_manager import BlockManager
from llm_node.engine.scheduler import Scheduler
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.sched.chunked_prefill import ChunkedPrefillPolicy
from llm_node.sched.pd_mux import PDMuxPolicy
from llm_node.sched.registry import make_policy
from llm_node.sched.roofline import roofline_model
from llm_node.sched.slo import SLO, Kind
from llm_node.sched.tempo import OutputLengthPredictor, TempoPolicy

M = roofline_model()


def sched(t=0.0):
    return Scheduler(BlockManager(4096, 16), 64, 8192, 1 << 16, (0,), clock=lambda: t)


def seq(n, slo=None, arrival=0.0, decoded=0):
    q = Sequence(list(range(3, 3 + n)), SamplingParams(max_tokens=4096), arrival=arrival)
    q.slo = slo
    return q


def decoding(s, n, ctx=1000):
    """n running sequences that finished their prefill."""
    out = []
    for _ in range(n):
        q = seq(ctx)
        s.add(q)
        s.admit(q)
        q.num_computed_tokens = ctx
        q.token_ids.append(7)
        out.append(q)
    return out


def test_chunked_prefill_decodes_first_and_keeps_the_tbt():
    s = sched()
    decs = decoding(s, 8)
    long = seq(4000)
    s.add(long)
    pol = ChunkedPrefillPolicy(token_budget=4096, model=M, tbt=0.03)
    b = pol.schedule(s)
    assert b.seqs[:8] == decs and b.num_new[:8] == [1] * 8
    assert b.seqs[8] is long and 16 <= b.num_new[8] < 4000
    from llm_node.sched.base import items
    assert M.step_time(items(b)) <= 0.03
    assert ChunkedPrefillPolicy(token_budget=256).schedule(sched()).seqs == []


def test_pd_mux_split_protects_the_tbt_and_uses_the_whole_device_when_alone():
    pol = PDMuxPolicy(M, tbt=0.02)
    s = sched()
    assert pol.choose_split([])[0] == 1.0
    decs = decoding(s, 32)
    f, n = pol.choose_split(decs)
    assert f < 1.0 and M.decode_time(1 - f, 32, sum(len(q) for q in decs)) <= 0.9 * 0.02
    bigger = [x for x in M.shares if x > f]
    assert all(M.decode_time(1 - x, 32, sum(len(q) for q in decs)) > 0.018 for x in bigger)
    tight = SLO(Kind.LATENCY, ttft=1.0, tbt=0.0112)  # 0.9 x 11.2 ms: only the 25 % and 37.5 % splits fit
    for q in decs:
        q.slo = tight
    assert pol.choose_split(decs)[0] < f  # a tighter TBT leaves more of the device to decode


def test_pd_mux_short_request_overtakes_a_long_prefill_at_a_block_boundary():
    s, pol = sched(), PDMuxPolicy(M, tbt=0.02, block_s=0.01)
    long = seq(30000)
    s.add(long)
    w = pol.dispatch(s, "prefill", {"prefill": None, "decode": None})
    assert w.batch.seqs == [long] and w.batch.num_new[0] < 30000 and w.share == 1.0
    long.num_computed_tokens += w.batch.num_new[0]
    short = seq(50)
    s.add(short)
    w2 = pol.dispatch(s, "prefill", {"prefill": None, "decode": None})
    assert w2.batch.seqs[0] is short and w2.batch.num_new[0] == 50


def test_pd_mux_waits_for_the_decode_step_holding_the_device():
    from llm_node.engine.scheduler import Batch
    from llm_node.sched.base import Work
    s, pol = sched(), PDMuxPolicy(M, tbt=0.02)
    decs = decoding(s, 32)
    s.add(seq(500))
    held = Work("decode", Batch(decs, [1] * 32), 1.0)
    assert pol.dispatch(s, "prefill", {"prefill": None, "decode": held}) is None
    w = pol.dispatch(s, "prefill", {"prefill": None, "decode": None})
    d = pol.dispatch(s, "decode", {"prefill": w, "decode": None})
    assert w.share < 1 and w.share + d.share == pytest.approx(1.0) and d.batch.seqs == decs
    pol.tbt = 0.0075  # no split keeps decode under 0.9 x 7.5 ms: time sharing, one mixed step on the device
    s2 = sched()
    decs2 = decoding(s2, 4)
    s2.add(seq(500))
    w = pol.dispatch(s2, "prefill", {"prefill": None, "decode": None})
    assert w.share == 1.0 and w.batch.seqs[:4] == decs2 and len(w.batch.seqs) == 5
    assert pol.dispatch(s2, "decode", {"prefill": w, "decode": None}) is None


def test_output_length_predictor_is_a_conditional_quantile():
    p = OutputLengthPredictor(quantile=0.5, prior=100)
    assert p.predict("chat", 0, 4096) == 100 and p.predict("chat", 0, 50) == 50
    for n in (10, 20, 30, 40, 200):
        p.observe("chat", n)
    assert p.predict("chat", 0, 4096) == 30
    assert p.predict("chat", 35, 4096) == 200
    assert p.predict("chat", 300, 4096) == 451


def test_tempo_serves_by_latest_start_and_just_enough():
    s, pol = sched(t=10.0), TempoPolicy(M)
    lax = seq(200, SLO(Kind.THROUGHPUT, ttlt=1000.0), arrival=9.0)
    urgent = seq(200, SLO(Kind.THROUGHPUT, ttlt=4.0), arrival=9.0)
    gone = seq(200, SLO(Kind.THROUGHPUT, ttlt=0.5), arrival=9.0)
    for q in (lax, gone, urgent):
        s.add(q)
    key, _, step = pol.keys(s, [lax, urgent, gone])
    assert key[urgent.seq_id] < key[lax.seq_id] < key[gone.seq_id]  # the late one is demoted behind all
    b = pol.schedule(s)
    assert b.seqs[0] is urgent and gone in b.seqs  # work conserving: it is still served
    ahead = seq(10, SLO(Kind.LATENCY, ttft=30.0, tbt=10.0), arrival=9.9)
    assert pol.latest_start(ahead, 10.0, step) > pol.latest_start(urgent, 10.0, step)


def test_registry_names_and_errors():
    assert make_policy("fcfs").name == "fcfs"
    assert make_policy("chunked_prefill").model is None
    with pytest.raises(ValueError, match="unknown scheduler 'edf'"):
        make_policy("edf")
    with pytest.raises(ValueError, match="needs a latency model"):
        make_policy("pd_mux")


def test_tempo_does_not_mix_when_padding_makes_mixed_steps_dear():
    import copy
    m = copy.deepcopy(M)
    m.pad = 1e-7  # a padded attention layout: a prompt chunk next to decodes costs B * Qmax * Lmax
    s, pol = sched(t=0.0), TempoPolicy(m)
    for q in decoding(s, 8):  # far ahead of their pace: their next tokens are due in 5 s
        q.slo = SLO(Kind.LATENCY, ttft=5.0, tbt=1.0)
    urgent = seq(300, SLO(Kind.LATENCY, ttft=0.05, tbt=1.0))
    s.add(urgent)
    b = pol.schedule(s)
    assert b.seqs == [urgent] and b.num_new == [300]  # prefill only, the whole prompt
    m.pad = 0.0
    s2 = sched()
    decoding(s2, 8)
    s2.add(seq(300, SLO(Kind.LATENCY, ttft=0.05, tbt=1.0)))
    assert len(TempoPolicy(m).schedule(s2).seqs) == 9  # cheap to mix: one mixed step
