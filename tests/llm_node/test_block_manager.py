"""Paged KV cache bookkeeping: no leaks under completions, aborts and preemptions; prefix-cache reuse."""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from llm_node.config import EngineConfig
from llm_node.engine.block_manager import BlockManager
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams, Sequence


def assert_no_leaks(bm: BlockManager):
    assert bm.num_free_blocks == len(bm.blocks)
    assert sorted(bm.free_ids) == list(range(len(bm.blocks)))
    assert all(b.ref_count == 0 for b in bm.blocks)


@pytest.fixture(scope="module")
def small_engine(gpt2_checkpoint):
    """A KV cache of 12 blocks of 4 tokens: a few requests overflow it and force preemption."""
    return LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=12, max_num_seqs=4))


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.lists(st.integers(1, 8), min_size=1, max_size=14), st.integers(1, 12)),
    st.tuples(st.just("step"), st.integers(1, 4)),
    st.tuples(st.just("abort"), st.integers(0, 20)),
), max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_no_leaked_blocks(small_engine, ops):
    eng, seqs = small_engine, []
    for op in ops:
        if op[0] == "add":
            seqs.append(eng.add_request(op[1], SamplingParams(temperature=0, max_tokens=op[2], ignore_eos=True)))
        elif op[0] == "step":
            for _ in range(op[1]):
                eng.step()
        elif seqs:
            eng.abort(seqs[op[1] % len(seqs)].seq_id)
        held = sum(len(s.block_table) for s in seqs)
        refs = sum(b.ref_count for b in eng.block_manager.blocks)
        assert refs == held, "every reference belongs to a live sequence's block table"
    while eng.has_unfinished():
        eng.step()
    assert all(s.finished for s in seqs)
    assert_no_leaks(eng.block_manager)


def test_preemption_keeps_greedy_output(gpt2_checkpoint):
    folder = gpt2_checkpoint[1]
    prompts = [[3 + i, 5, 7, 11 + i, 13] for i in range(6)]
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    tight = LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=14))
    roomy = LLMEngine(EngineConfig(folder, block_size=4, num_kv_blocks=256))
    out = tight.generate(prompts, params)
    assert sum(s.num_preemptions for s in out) > 0
    assert [s.completion_ids for s in out] == [s.completion_ids for s in roomy.generate(prompts, params)]
    assert_no_leaks(tight.block_manager)


def test_prefix_cache_reuses_full_blocks(gpt2_checkpoint):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=64))
    shared = list(range(3, 13))  # 10 tokens: two full blocks
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    first, = eng.generate([shared + [20, 21]], params)
    second, = eng.generate([shared + [20, 21]], params)
    other, = eng.generate([shared[:5] + [30] * 7], params)
    assert (first.num_cached_tokens, second.num_cached_tokens, other.num_cached_tokens) == (0, 8, 4)
    assert second.completion_ids == first.completion_ids
    cold = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=4, num_kv_blocks=64,
                                  enable_prefix_caching=False))
    assert cold.generate([shared[:5] + [30] * 7], params)[0].completion_ids == other.completion_ids
    assert_no_leaks(eng.block_manager)


def test_whole_prompt_in_cache_still_computes_last_token():
    bm = BlockManager(8, 4)
    a = Sequence(list(range(8)), SamplingParams())
    assert bm.allocate(a)
    a.num_computed_tokens = 8
    bm.commit(a)
    b = Sequence(list(range(8)), SamplingParams())
    assert bm.allocate(b)
    assert b.num_cached_tokens == 4 and b.block_table[0] == a.block_table[0] and b.block_table[1] != a.block_table[1]
    assert bm.blocks[a.block_table[0]].ref_count == 2
    bm.free(a)
    bm.free(b)
    assert_no_leaks(bm)


def test_allocation_failure_holds_nothing():
    bm = BlockManager(3, 4)
    seq = Sequence(list(range(13)), SamplingParams())
    assert not bm.allocate(seq)
    assert seq.block_table == [] and bm.num_free_blocks == 3
