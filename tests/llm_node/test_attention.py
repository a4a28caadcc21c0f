"""A mixed step (decodes beside a prompt chunk) attends in two groups and gives what its parts give alone."""
import torch

from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.scheduler import Batch
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.layers.attention import AttentionContext


def test_groups_split_single_from_multi_token_rows():
    tables = [[0, 1], [2], [3, 4, 5]]
    ctx = AttentionContext.build(tables, [5, 0, 9], [6, 3, 10], 4, torch.device("cpu"))
    decode, prompt = ctx.groups
    assert decode.tokens.tolist() == [0, 4] and prompt.tokens.tolist() == [1, 2, 3]
    assert decode.mask.shape == (2, 1, 1, 10) and prompt.mask.shape == (1, 1, 3, 3)
    # slot of position p of a sequence: table[p // 4] * 4 + p % 4
    assert ctx.slot_mapping.tolist() == [1 * 4 + 1, 2 * 4 + 0, 2 * 4 + 1, 2 * 4 + 2, 5 * 4 + 1]
    only = AttentionContext.build(tables[:1], [5], [6], 4, torch.device("cpu"))
    assert len(only.groups) == 1 and only.groups[0].tokens is None


def test_mixed_step_matches_its_parts(llama_checkpoint):
    eng = LLMEngine(EngineConfig(llama_checkpoint[1], num_kv_blocks=64, block_size=4))
    g = torch.Generator().manual_seed(3)
    seqs = [Sequence(torch.randint(3, 100, (n,), generator=g).tolist(), SamplingParams()) for n in (9, 14, 30)]
    for s in seqs:
        assert eng.block_manager.grow(s, len(s))
    decodes, chunk = seqs[:2], seqs[2]
    for s in decodes:
        s.num_computed_tokens = len(s) - 1
    chunk.num_computed_tokens = 12  # 18 new tokens after 12 cached
    whole = Batch()
    for s in decodes:
        whole.add(s, 1)
    whole.add(chunk, len(chunk) - 12)
    # fill the cache for every cached position first (one prefill of each sequence's prefix)
    fill = Batch()
    for s in seqs:
        fill.add(s, s.num_computed_tokens)
        s.num_computed_tokens = 0
    eng.runner.run(fill)
    for s, n in zip(seqs, (8, 13, 12)):
        s.num_computed_tokens = n
    start = eng.runner.kv.clone()
    rows, hidden, logits = eng.runner.run(whole)
    eng.runner.kv.copy_(start)
    parts = [Batch(), Batch()]
    for s in decodes:
        parts[0].add(s, 1)
    parts[1].add(chunk, len(chunk) - 12)
    got = [eng.runner.run(p) for p in parts]
    assert rows == [0, 1, 2]
    torch.testing.assert_close(logits, torch.cat([got[0][2], got[1][2]]), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(hidden, torch.cat([got[0][1], got[1][1]]), rtol=1e-4, atol=1e-5)
