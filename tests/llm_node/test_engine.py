"""Engine behaviour: stop conditions, timings, kNN-LM hooks, bad requests next to good ones."""
import itertools

import pytest
import torch

from llm_node.config import EngineConfig
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams
from llm_node.errors import RequestError


@pytest.fixture(scope="module")
def eng(llama_checkpoint):
    return LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=40, max_model_len=64))


def greedy(**kw):
    return SamplingParams(temperature=0, ignore_eos=True, **kw)


def test_stop_tokens_and_max_tokens(eng):
    full, = eng.generate([[5, 6, 7]], greedy(max_tokens=10))
    assert len(full.completion_ids) == 10 and full.finish_reason == "length"
    stop = full.completion_ids[4]
    cut, = eng.generate([[5, 6, 7]], greedy(max_tokens=10, stop_token_ids=[stop]))
    first = full.completion_ids.index(stop)
    assert cut.completion_ids == full.completion_ids[:first + 1] and cut.finish_reason == "stop"


def test_eos_stops_unless_ignored(eng):
    forced = lambda tokens, logits, hidden: torch.where(torch.arange(len(logits)) == 2, 0.0, -1e9)  # eos = 2
    seq, = eng.generate([[5, 6]], SamplingParams(temperature=0, max_tokens=5, logits_processor=forced))
    assert seq.completion_ids == [2] and seq.finish_reason == "stop"
    seq, = eng.generate([[5, 6]], greedy(max_tokens=5, logits_processor=forced))
    assert seq.completion_ids == [2] * 5


def test_context_length_ends_generation(eng):
    seq, = eng.generate([list(range(3, 60))], greedy(max_tokens=50))
    assert len(seq) == 64 and seq.finish_reason == "length"


def test_timings_are_ordered(eng):
    seqs = eng.generate([[3, 4, 5], [9] * 20], greedy(max_tokens=6))
    for s in seqs:
        t = s.timings()
        assert 0 < t["ttft"] <= t["ttlt"] and len(t["tbt"]) == 5 and min(t["tbt"]) >= 0
        assert s.arrival_time < s.token_times[0] <= s.token_times[-1] <= s.finish_time


def test_times_come_from_the_scheduler_clock(llama_checkpoint):
    eng = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=16))
    ticks = itertools.count(100.0)
    eng.scheduler.clock = lambda: next(ticks)  # a simulated clock, as the simulator passes
    seq, = eng.generate([[3, 4, 5]], greedy(max_tokens=3))
    assert (seq.arrival_time, seq.token_times, seq.finish_time) == (100.0, [101.0, 102.0, 103.0], 104.0)
    late = eng.add_request([3, 4], greedy(max_tokens=1), slo="tight")
    assert late.arrival_time == 105.0 and late.slo == "tight"


def test_hidden_states_feed_the_logits(eng):
    """The returned hidden state is the lm_head input: the head applied to it gives the sampled token."""
    seq, = eng.generate([[3, 4, 5, 6]], greedy(max_tokens=5, return_hidden=True))
    hidden = torch.stack(seq.hidden_states)
    assert hidden.shape == (5, 64)
    with torch.no_grad():
        logits = eng.runner.model.compute_logits(hidden)
    assert logits.argmax(-1).tolist() == seq.completion_ids


def test_logits_processor_mixes_a_distribution(eng):
    """p = lambda * p_knn + (1 - lambda) * p_lm with a one-hot p_knn and lambda=1 forces its token."""
    def knn(tokens, logits, hidden):
        p_knn = torch.zeros_like(logits)
        p_knn[len(tokens) % 50] = 1.0
        return (1.0 * p_knn + 0.0 * logits.softmax(-1)).log()
    seq, = eng.generate([[3, 4, 5]], greedy(max_tokens=4, logits_processor=knn))
    assert seq.completion_ids == [3, 4, 5, 6]


@pytest.mark.parametrize("ids, params, message", [
    ([], None, "empty prompt"),
    ([5, 120], None, "token id 120 is outside"),
    ([5, -1], None, "token id -1"),
    (["a"], None, "must be integers"),
    (list(range(3, 67)), None, "leaves no room"),
    ([5], "greedy", "SamplingParams"),
])
def test_bad_requests_are_refused(eng, ids, params, message):
    with pytest.raises(RequestError, match=message):
        eng.add_request(ids, params)
    assert not eng.has_unfinished()


def test_kv_cache_too_small_for_request(llama_checkpoint):
    eng = LLMEngine(EngineConfig(llama_checkpoint[1], block_size=4, num_kv_blocks=4))
    with pytest.raises(RequestError, match="needs 5 KV blocks, the cache has 4"):
        eng.add_request([5] * 10, greedy(max_tokens=10))


def test_failing_hook_ends_only_its_request(eng):
    def broken(tokens, logits, hidden):
        raise ValueError("boom")
    good = eng.add_request([3, 4], greedy(max_tokens=6))
    bad = eng.add_request([3, 4], greedy(max_tokens=6, logits_processor=broken))
    while eng.has_unfinished():
        eng.step()
    assert bad.finish_reason == "error" and "boom" in bad.error and bad.block_table == []
    assert good.finish_reason == "length" and len(good.completion_ids) == 6
    assert eng.block_manager.num_free_blocks == 40


def test_abort_frees_blocks(eng):
    seq = eng.add_request(list(range(3, 30)), greedy(max_tokens=20))
    eng.step()
    assert seq.block_table
    eng.abort(seq.seq_id)
    assert seq.finish_reason == "abort" and not eng.has_unfinished()
    assert eng.block_manager.num_free_blocks == 40


@pytest.mark.parametrize("kw, message", [
    ({"temperature": float("inf")}, "temperature must be a finite number, not inf"),
    ({"temperature": float("nan")}, "temperature must be a finite number, not nan"),
    ({"temperature": "1"}, "temperature must be a finite number"),
    ({"top_p": float("nan")}, "top_p must be a finite number, not nan"),
    ({"top_p": float("-inf")}, "top_p must be a finite number"),
    ({"temperature": -0.5}, "temperature must be >= 0"),
])
def test_sampling_params_refuse_non_finite_values_in_process(kw, message):
    with pytest.raises(RequestError, match=message):
        SamplingParams(**kw)
