"""The CUDA-graph decode path's inputs, padding and outputs, run eagerly through the same static buffers on
the CPU (capture and replay need CUDA: scripts/gpu_check_sched.py checks them on a GPU)."""
import pytest
import torch

from llm_node.config import EngineConfig
from llm_node.engine.cuda_graphs import DecodeGraphs, PrefillGraphs, buckets
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.model_runner import ModelRunner
from llm_node.engine.scheduler import Batch
from llm_node.engine.sequence import SamplingParams


def test_buckets():
    assert buckets(64) == [1, 2, 4, 8, 16, 32, 64]
    assert buckets(48) == [1, 2, 4, 8, 16, 32, 48]
    assert buckets(1000, 256) == [256, 512, 1000]
    assert buckets(1) == [1]
    assert buckets(4096, 256, half_steps=True) == [256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
    assert buckets(600, 256, half_steps=True) == [256, 384, 512, 600]


@pytest.fixture(params=["llama_checkpoint", "gpt2_checkpoint"])
def engine(request):
    return LLMEngine(EngineConfig(request.getfixturevalue(request.param)[1], num_kv_blocks=64, block_size=4))


def prefilled(engine, lengths):
    """Sequences of the given prompt lengths with their prompts computed (their next step is a decode)."""
    g = torch.Generator().manual_seed(1)
    seqs = [engine.add_request(torch.randint(3, 100, (n,), generator=g).tolist(),
                                SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)) for n in lengths]
    while any(s.num_computed_tokens < len(s.token_ids) - 1 or not s.completion_ids for s in seqs):
        engine.step()
    return seqs


def check_same(engine, batch, graphs):
    """The graph path gives the eager runner's outputs and KV writes, from the same starting cache; padded
    rows write the scratch block only."""
    runner, slots = engine.runner, engine.config.num_kv_blocks * engine.config.block_size
    start = runner.kv.clone()
    rows_e, hid_e, log_e = runner.run(batch)
    kv_e = runner.kv.clone()
    runner.kv.copy_(start)
    rows_g, hid_g, log_g = graphs(batch) if callable(graphs) else graphs.run(batch)
    kv_g = runner.kv
    assert rows_g == rows_e
    torch.testing.assert_close(hid_g, hid_e, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(log_g, log_e, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(kv_g[:, :, :slots], kv_e[:, :, :slots], rtol=1e-5, atol=1e-6)
    written = (kv_g[:, :, :slots] != start[:, :, :slots]).flatten(2).any(0).any(0).any(-1).nonzero().flatten()
    new = {s.block_table[p // 4] * 4 + p % 4 for s, n in zip(batch.seqs, batch.num_new)
           for p in range(s.num_computed_tokens, s.num_computed_tokens + n)}
    assert set(written.tolist()) <= new


def test_decode_step_matches_the_eager_runner(engine):
    seqs = prefilled(engine, [5, 17, 9])
    graphs = DecodeGraphs(engine.runner.model, 64 * 4, 4, max_batch=8, max_context=128,
                          device=torch.device("cpu"), min_context=16)
    assert graphs.batches == [1, 2, 4, 8] and graphs.contexts == [16, 24, 32, 48, 64, 96, 128]
    batch = Batch()
    for s in seqs:
        batch.add(s, 1)
    assert graphs.pick(batch) == (4, 24)  # 3 rows pad to 4; the longest context is 18 positions
    check_same(engine, batch, graphs)
    one = Batch()
    one.add(seqs[0], 1)
    assert graphs.pick(one) == (1, 16)
    check_same(engine, one, graphs)


def test_a_row_short_of_its_last_token_is_computed_but_not_returned(engine):
    seqs = prefilled(engine, [6, 11])
    seqs[1].num_computed_tokens -= 2  # recompute two tokens one at a time: the first is not its last
    graphs = DecodeGraphs(engine.runner.model, 64 * 4, 4, max_batch=4, max_context=64,
                          device=torch.device("cpu"), min_context=16)
    batch = Batch()
    for s in seqs:
        batch.add(s, 1)
    check_same(engine, batch, graphs)
    assert graphs.run(batch)[0] == [0]


def test_only_decode_steps_that_fit_have_a_graph(engine):
    seqs = prefilled(engine, [5, 40, 7])
    graphs = DecodeGraphs(engine.runner.model, 64 * 4, 4, max_batch=2, max_context=32,
                          device=torch.device("cpu"), min_context=16)
    prefill = Batch()
    prefill.add(seqs[0], 2)
    seqs[0].num_computed_tokens -= 1
    assert graphs.pick(prefill) is None and graphs.run(prefill) is None
    seqs[0].num_computed_tokens += 1
    too_many, too_long = Batch(), Batch()
    for s in seqs:
        too_many.add(s, 1)
    too_long.add(seqs[1], 1)
    assert graphs.pick(too_many) is None   # 3 rows > 2
    assert graphs.pick(too_long) is None   # 41 positions > 32


def test_runner_has_no_graphs_on_cpu(engine):
    assert engine.runner.graphs is None
    assert engine.runner.kv.shape[2] == (64 + 1) * 4  # the scratch block


def prefill_graphs(engine, **kw):
    return PrefillGraphs(engine.runner.model, 64 * 4, 4, device=torch.device("cpu"), min_context=16, **kw)


def test_prefill_step_matches_the_eager_runner(engine):
    graphs = prefill_graphs(engine, max_tokens=64, max_context=128)
    assert graphs.queries == [16, 32, 64] and graphs.contexts == [16, 24, 32, 48, 64, 96, 128]
    assert (16, 16) in graphs.keys() and (64, 48) not in graphs.keys()  # a context holds its queries
    g = torch.Generator().manual_seed(5)
    seq = engine.add_request(torch.randint(3, 100, (40,), generator=g).tolist(), SamplingParams())
    assert engine.block_manager.grow(seq, len(seq))
    whole = Batch()
    whole.add(seq, 40)
    assert graphs.pick(whole) == (64, 64)
    check_same(engine, whole, graphs)
    head, tail = Batch(), Batch()
    head.add(seq, 22)                    # a chunk that is not the last: nothing comes out
    check_same(engine, head, graphs)
    assert graphs.run(head)[0] == [] and graphs.run(head)[1].shape[0] == 0
    engine.runner.run(head)
    seq.num_computed_tokens = 22
    tail.add(seq, 18)                    # the rest, after 22 cached positions
    assert graphs.pick(tail) == (32, 48)
    check_same(engine, tail, graphs)


def test_several_prompts_replay_one_graph_each(engine):
    graphs = prefill_graphs(engine, max_tokens=64, max_context=128)
    g = torch.Generator().manual_seed(6)
    seqs = [engine.add_request(torch.randint(3, 100, (n,), generator=g).tolist(), SamplingParams()) for n in (9, 30, 17)]
    batch = Batch()
    for s in seqs:
        assert engine.block_manager.grow(s, len(s))
        batch.add(s, len(s))
    check_same(engine, batch, lambda b: ModelRunner.prefill_by_graphs(b, graphs))
    too_long = Batch()
    too_long.add(seqs[1], 30)
    assert prefill_graphs(engine, max_tokens=16, max_context=128).pick(too_long) is None
    assert ModelRunner.prefill_by_graphs(too_long, prefill_graphs(engine, max_tokens=16, max_context=128)) is None
    one = Batch()
    one.add(seqs[0], 1)
    assert graphs.pick(one) is None      # single tokens are decode graphs' work
