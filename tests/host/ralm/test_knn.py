import numpy as np
import pytest
import torch

from host.spec.errors import InputError
from llm_node.knn import interpolate, knn_log_probs


def test_knn_distribution_sums_neighbours_of_the_same_token():
    dist = np.array([[1.0, 1.0, 3.0, np.inf]], np.float32)
    tok = np.array([[4, 4, 2, -1]])
    p = knn_log_probs(dist, tok, vocab=6, temperature=2.0).exp()[0].numpy()
    w = np.exp(-np.array([1.0, 1.0, 3.0]) / 2.0)
    w /= w.sum()
    np.testing.assert_allclose(p, [0, 0, w[2], 0, w[0] + w[1], 0], rtol=1e-6)
    assert p.sum() == pytest.approx(1.0)


def test_interpolation_matches_definition():
    torch.manual_seed(0)
    logits = torch.randn(3, 10)
    dist = np.array([[0.5, 2.0], [1.0, 1.0], [np.inf, np.inf]], np.float32)
    tok = np.array([[1, 3], [7, 7], [-1, -1]])
    knn = knn_log_probs(dist, tok, 10)
    for lam in (0.0, 0.25, 1.0):
        got = interpolate(logits, knn, lam).exp()
        want = lam * knn.exp() + (1 - lam) * torch.softmax(logits, -1)
        want[2] = torch.softmax(logits[2], -1)                    # no neighbours: the LM alone
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(got.sum(-1), torch.ones(3))


def test_bad_arguments():
    with pytest.raises(InputError, match="temperature"):
        knn_log_probs(np.zeros((1, 1)), np.zeros((1, 1), int), 5, temperature=0)
    with pytest.raises(InputError, match="vocab"):
        knn_log_probs(np.zeros((1, 1)), np.full((1, 1), 9), 5)
    with pytest.raises(InputError, match="lambda"):
        interpolate(torch.zeros(1, 5), torch.zeros(1, 5), 1.5)
