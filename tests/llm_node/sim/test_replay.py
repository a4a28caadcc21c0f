"""The real replay's requests stop at their drawn lengths (an in-place EOS forcing hook) on the engine."""
from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.sim.replay import real_requests
from llm_node.sim.workload import Request


def test_requests_end_with_eos_at_their_drawn_length(gpt2_checkpoint):
    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], num_kv_blocks=64, block_size=4))
    eos = eng.model_config.eos_token_ids[0]
    workload = [Request(0.0, 7, 1), Request(0.0, 12, 5), Request(0.0, 3, 9)]
    reqs = real_requests(workload, eng.model_config.vocab_size, eos, seed=1, max_tokens=20)
    assert all(eos not in ids for _, ids, _, _ in reqs)
    seqs = eng.generate([ids for _, ids, _, _ in reqs], [params for _, _, params, _ in reqs])
    for seq, r in zip(seqs, workload):
        assert len(seq.completion_ids) == r.output_len
        assert seq.completion_ids[-1] == eos and eos not in seq.completion_ids[:-1]
        assert seq.finish_reason == "stop"
