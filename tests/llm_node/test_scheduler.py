"""Scheduling policies: same greedy tokens whatever the batching, budgets respected, nothing leaked."""
import pytest

from llm_node.config import EngineConfig
from llm_node.engine.block_manager import BlockManager
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.scheduler import Batch, FCFSPolicy, Scheduler, SchedulerPolicy, grow_decodes
from llm_node.engine.sequence import SamplingParams, Sequence

PROMPTS = [[3 + i % 7] * n for i, n in enumerate((1, 23, 5, 40, 9, 17, 2, 30))]
PARAMS = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)


class ChunkingPolicy(SchedulerPolicy):
    """A minimal chunked-prefill policy (llm_node/sched has the real one): decodes first, then prompt chunks
    within `token_budget`; it checks that the runner computes any mix of chunks and decodes exactly."""

    def __init__(self, token_budget: int):
        self.token_budget = token_budget

    def schedule(self, s) -> Batch:
        batch = Batch()
        for q in grow_decodes(s, [q for q in s.running if len(q) - q.num_computed_tokens == 1]):
            batch.add(q, 1)
        prefilling = [q for q in s.running if len(q) - q.num_computed_tokens > 1]
        budget = self.token_budget - batch.num_tokens
        for seq in prefilling:
            if budget <= 0:
                return batch
            batch.add(seq, min(len(seq) - seq.num_computed_tokens, budget))
            budget -= batch.num_new[-1]
        while budget > 0 and s.waiting and len(s.running) < s.max_num_seqs and s.admit(s.waiting[0]):
            seq = s.running[-1]
            batch.add(seq, min(len(seq) - seq.num_computed_tokens, budget))
            budget -= batch.num_new[-1]
        return batch


class Recording:
    """Wraps a policy and keeps (sequence id, new tokens) of every step."""

    def __init__(self, policy):
        self.policy, self.steps = policy, []

    def schedule(self, s):
        batch = self.policy.schedule(s)
        self.steps.append([(q.seq_id, n) for q, n in zip(batch.seqs, batch.num_new)])
        return batch


def run(folder, policy, **kw):
    eng = LLMEngine(EngineConfig(folder, block_size=4, **kw), policy=policy)
    seqs = eng.generate(PROMPTS, PARAMS)
    assert eng.block_manager.num_free_blocks == eng.config.num_kv_blocks
    return seqs


def ids(seqs):
    return [s.completion_ids for s in seqs]


@pytest.fixture(scope="module")
def expected(llama_checkpoint):
    """Each prompt alone (one sequence at a time)."""
    return ids(run(llama_checkpoint[1], FCFSPolicy(), num_kv_blocks=128, max_num_seqs=1))


def test_fcfs_respects_limits(llama_checkpoint, expected):
    rec = Recording(FCFSPolicy())
    out = run(llama_checkpoint[1], rec, num_kv_blocks=128, max_num_seqs=3, max_num_batched_tokens=45)
    assert ids(out) == expected
    assert max(len(step) for step in rec.steps) == 3
    prefill_steps = [step for step in rec.steps if any(n > 1 for _, n in step)]
    assert all(sum(n for _, n in step) <= 45 or len(step) == 1 for step in prefill_steps)
    decode_steps = [step for step in rec.steps if step not in prefill_steps]
    assert all(n == 1 for step in decode_steps for _, n in step)


def test_chunked_prefill_mixes_decodes_and_chunks(llama_checkpoint, expected):
    rec = Recording(ChunkingPolicy(token_budget=7))
    out = run(llama_checkpoint[1], rec, num_kv_blocks=128)
    assert ids(out) == expected
    assert all(sum(n for _, n in step) <= 7 for step in rec.steps)
    assert any(1 in [n for _, n in step] and any(n > 1 for _, n in step) for step in rec.steps)


def test_chunked_prefill_under_preemption(llama_checkpoint, expected):
    out = run(llama_checkpoint[1], ChunkingPolicy(token_budget=16), num_kv_blocks=20)
    assert ids(out) == expected and sum(s.num_preemptions for s in out) > 0


def test_admit_takes_any_waiting_sequence_and_a_refusal_changes_nothing():
    s = Scheduler(BlockManager(4, 4), 8, 64, 64, (0,))
    a, b, c = (Sequence([3] * n, SamplingParams()) for n in (4, 8, 20))
    for q in (a, b, c):
        s.add(q)
    assert s.admit(b) and list(s.waiting) == [a, c] and s.running == [b]
    assert not s.admit(c) and list(s.waiting) == [a, c] and c.block_table == [] and s.running == [b]
    assert s.admit(a) and list(s.waiting) == [c] and s.running == [b, a]
