"""Paged KV cache bookkeeping: no leaks under completions, aborts and preemptions; prefix-cache reuse."""
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


class PlainBlockManager:
    """The straightforward bookkeeping (a deque free list with O(n) removal of a prefix-cache hit, commit
    rescanning every block): the reference for BlockManager's O(touched blocks) version."""

    def __init__(self, num_blocks, block_size):
        self.bs, self.hash, self.toks = block_size, [None] * num_blocks, [()] * num_blocks
        self.refs, self.free_ids, self.hash_to_id, self.tables = [0] * num_blocks, deque(range(num_blocks)), {}, {}

    def allocate(self, key, tokens):
        table, h = self.tables.setdefault(key, []), None
        for i in range((len(tokens) - 1) // self.bs):
            chunk = tuple(tokens[i * self.bs:(i + 1) * self.bs])
            h = hash((h, chunk))
            b = self.hash_to_id.get(h)
            if b is None or self.toks[b] != chunk:
                break
            if self.refs[b] == 0:
                self.free_ids.remove(b)
            self.refs[b] += 1
            table.append(b)
        if not self.grow(key, len(tokens)):
            self.free(key)
            return False
        return True

    def grow(self, key, n):
        need = -(-n // self.bs) - len(self.tables[key])
        if need > len(self.free_ids):
            return False
        for _ in range(need):
            b = self.free_ids.popleft()
            if self.hash[b] is not None and self.hash_to_id.get(self.hash[b]) == b:
                del self.hash_to_id[self.hash[b]]
            self.hash[b], self.toks[b], self.refs[b] = None, (), 1
            self.tables[key].append(b)
        return True

    def commit(self, key, tokens, computed):
        table = self.tables[key]
        for i in range(computed // self.bs):
            if self.hash[table[i]] is None:
                self.toks[table[i]] = tuple(tokens[i * self.bs:(i + 1) * self.bs])
                self.hash[table[i]] = hash((self.hash[table[i - 1]] if i else None, self.toks[table[i]]))
                self.hash_to_id.setdefault(self.hash[table[i]], table[i])

    def free(self, key):
        for b in reversed(self.tables.pop(key)):
            self.refs[b] -= 1
            if self.refs[b] == 0:
                self.free_ids.append(b)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "run", "free"]), st.integers(0, 7),
                          st.lists(st.integers(0, 2), min_size=1, max_size=12)), max_size=40))
def test_block_assignment_equals_the_plain_bookkeeping(ops):
    """Same blocks handed out in the same order, same prefix hits, same cache keys as the reference."""
    bm, ref, live = BlockManager(10, 2), PlainBlockManager(10, 2), {}
    for op, key, tokens in ops:
        seq = live.get(key)
        if op == "add" and seq is None:
            seq = Sequence(tokens, SamplingParams())
            ok = bm.allocate(seq)
            assert ok == ref.allocate(key, tokens)
            if ok:
                live[key] = seq
            else:
                ref.tables.pop(key, None)
        elif op == "run" and seq is not None:  # compute some tokens, sample more, commit full blocks
            seq.num_computed_tokens = min(len(seq), seq.num_computed_tokens + len(tokens))
            bm.commit(seq)
            ref.commit(key, seq.token_ids, seq.num_computed_tokens)
            grown = bm.grow(seq, len(seq) + 2)
            assert grown == ref.grow(key, len(seq) + 2)
            if grown:
                seq.token_ids += (tokens * 2)[:2]
        elif op == "free" and seq is not None:
            bm.free(live.pop(key))
            ref.free(key)
        assert {k: s.block_table for k, s in live.items()} == ref.tables
        assert list(bm.free_ids) == list(ref.free_ids) and bm.hash_to_id == ref.hash_to_id
        assert [b.hash for b in bm.blocks] == ref.hash
