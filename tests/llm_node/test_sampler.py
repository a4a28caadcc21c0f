"""Sampling against direct computations on fixed logits."""
import pytest
import torch

from llm_node.engine.sampler import sample
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.errors import RequestError

LOGITS = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, -3.0]])


def draw(params: SamplingParams, n=4000, seed=0):
    seq = Sequence([1], params)
    seq.generator = torch.Generator().manual_seed(seed)
    return torch.tensor([sample(LOGITS, [seq], None)[0] for _ in range(n)])


def test_greedy_is_argmax():
    seqs = [Sequence([1], SamplingParams(temperature=0)) for _ in range(2)]
    assert sample(torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 1.0]]), seqs, None) == [1, 0]


def test_temperature_sampling_follows_softmax():
    counts = torch.bincount(draw(SamplingParams(temperature=0.7)), minlength=6).float() / 4000
    expected = (LOGITS[0] / 0.7).softmax(-1)
    assert (counts - expected).abs().max() < 0.03


def test_top_k_and_top_p_restrict_support():
    assert set(draw(SamplingParams(top_k=2), 500).tolist()) == {0, 1}
    p = LOGITS[0].softmax(-1)  # 0.56, 0.21, 0.13, ...: top_p 0.7 keeps the first two, 0.8 three
    assert set(draw(SamplingParams(top_p=0.7), 500).tolist()) == {0, 1}
    assert set(draw(SamplingParams(top_p=0.8), 800).tolist()) == {0, 1, 2}
    assert p[:2].sum() < 0.8 < p[:3].sum()
    assert set(draw(SamplingParams(top_p=0.01), 50).tolist()) == {0}


def test_seeded_requests_repeat():
    assert torch.equal(draw(SamplingParams(), 50, seed=5), draw(SamplingParams(), 50, seed=5))
    assert not torch.equal(draw(SamplingParams(), 50, seed=5), draw(SamplingParams(), 50, seed=6))


@pytest.mark.parametrize("kw", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-2),
                                dict(max_tokens=0), dict(temperature=float("nan"))])
def test_invalid_parameters(kw):
    with pytest.raises(RequestError):
        SamplingParams(**kw)
