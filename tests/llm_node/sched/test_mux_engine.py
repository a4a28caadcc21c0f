"""Real execution on CPU: every scheduler, PD multiplexing's two partitions included, gives the tokens the
plain engine gives (greedy), with the shared paged KV cache; the CPU partitions use their thread counts."""
import threading
import time

import pytest
import torch

from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.partition import Worker, green_contexts_status, make_partitions
from llm_node.sched.latency import LatencyModel, Split
from llm_node.sched.mux_engine import MuxEngine
from llm_node.sched.registry import NAMES, make_policy
from llm_node.sched.slo import SLO, Kind

MODEL = LatencyModel("test", Split(1.0, {"c0": 1e-3, "tokens": 1e-5, "attn": 1e-8, "context": 0.0},
                                   {"c0": 1e-3, "batch": 1e-4, "context": 1e-7}),
                     [Split(0.5, {"c0": 1e-3, "tokens": 1.2e-5, "attn": 1.2e-8, "context": 0.0},
                            {"c0": 1e-3, "batch": 1e-4, "context": 1e-7}, 1, 1)], 1e-7, units=2)


def prompts():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(3, 100, (n,), generator=g).tolist() for n in (40, 5, 23, 60, 9, 31)]


@pytest.fixture(scope="module")
def reference(gpt2_checkpoint):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=200, max_model_len=128))
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    return [s.completion_ids for s in eng.generate(prompts(), params)]


@pytest.mark.parametrize("name", NAMES)
def test_real_run_matches_the_plain_engine(gpt2_checkpoint, reference, name):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=200, max_model_len=128))
    mux = MuxEngine(eng, make_policy(name, MODEL, tbt=0.05))
    slo = SLO(Kind.LATENCY, ttft=5.0, tbt=1.0)
    reqs = [(0.01 * i, p, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True), slo)
            for i, p in enumerate(prompts())]
    try:
        seqs = mux.run(reqs)
    finally:
        mux.close()
    assert [s.completion_ids for s in seqs] == reference
    assert all(s.finished and len(s.token_times) == 12 for s in seqs)
    assert eng.block_manager.num_free_blocks == 200
    if name in ("pd_mux", "pd_disagg", "tempo_mux"):
        assert mux.steps["prefill"] > 0 and mux.steps["decode"] > 0


def test_lanes_run_the_engine_hooks_and_end_only_a_failing_request(gpt2_checkpoint, reference):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=200, max_model_len=128))
    mux = MuxEngine(eng, make_policy("pd_mux", MODEL, tbt=0.05))

    def forced(tokens, logits, hidden):
        return torch.where(torch.arange(len(logits)) == 7, 0.0, -1e9)

    def broken(tokens, logits, hidden):
        raise ValueError("boom")

    slo = SLO(Kind.LATENCY, ttft=5.0, tbt=1.0)
    greedy = lambda proc: SamplingParams(temperature=0, max_tokens=6, ignore_eos=True, logits_processor=proc)
    try:
        seqs = mux.run([(0.0, p, greedy(proc), slo) for p, proc in zip(prompts(), (forced, broken, None))])
    finally:
        mux.close()
    assert seqs[0].slo is slo and seqs[0].completion_ids == [7] * 6
    assert seqs[1].finish_reason == "error" and "boom" in seqs[1].error
    assert seqs[2].completion_ids == reference[2][:6]
    assert eng.block_manager.num_free_blocks == 200


def test_abort_in_flight_waits_for_its_step(gpt2_checkpoint, reference):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=200, max_model_len=128))
    mux = MuxEngine(eng, make_policy("pd_mux", MODEL, tbt=0.05))
    seqs = [mux.add_request(p, SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)) for p in prompts()]
    events = []
    try:
        mux.step()
        victim = next(q for w in mux.busy.values() if w is not None for q in w.batch.seqs)
        table = list(victim.block_table)
        mux.abort(victim.seq_id)
        assert victim.block_table == table and not victim.finished  # a lane is writing its KV blocks
        while mux.has_unfinished():
            events += mux.step()
            time.sleep(1e-4)
    finally:
        mux.close()
    assert victim.finish_reason == "abort" and all(q is not victim for q, _ in events)
    assert [s.completion_ids for s in seqs if s is not victim] == \
        [r for s, r in zip(seqs, reference) if s is not victim]
    assert eng.block_manager.num_free_blocks == 200


def test_cpu_partitions_set_their_thread_counts():
    p, d = make_partitions("cpu", 1, 3)
    assert (p.units, d.units, p.share) == (1, 2, pytest.approx(1 / 3))
    seen = {}
    workers = [Worker(p, "p"), Worker(d, "d")]
    try:
        for w in workers:
            seen[w.partition.name] = w.submit(torch.get_num_threads).result(timeout=10)
    finally:
        for w in workers:
            w.close()
    assert seen == {"prefill": 1, "decode": 2}
    whole, none = make_partitions("cpu", 2, 2)
    assert whole.units == 2 and none is None
    with pytest.raises(ValueError, match="prefill_units"):
        make_partitions("cpu", 3, 2)


def test_green_context_fallback_is_explained():
    ok, why = green_contexts_status("cpu")
    assert not ok and "CPU analogue" in why


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: Green Context SM partitions")
def test_green_context_partitions_on_cuda():
    ok, why = green_contexts_status("cuda")
    if not ok:
        pytest.skip(why)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    p, d = make_partitions("cuda", sms // 2, sms)
    assert p.green is not None and d.green is not None
    out = {}

    def job():
        x = torch.randn(256, 256, device="cuda")
        out[threading.current_thread().name] = (x @ x).sum().item()
        return p.event()

    w = Worker(p, "p")
    try:
        ev = w.submit(job).result(timeout=60)
        ev.synchronize()
    finally:
        w.close()
    assert out
