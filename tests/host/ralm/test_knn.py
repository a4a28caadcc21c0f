import numpy as np
import pytest
import torch

from host.spec.errors import InputError
from llm_node.knn import interpolate, knn_log_probs, knn_target_probs, mix_target_log_probs


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


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_target_path_equals_dense_path(lam):
    rng = np.random.default_rng(0)
    n, k, vocab = 40, 6, 11
    dist = rng.uniform(0, 5, (n, k)).astype(np.float32)
    tokens = rng.integers(0, vocab, (n, k))
    dist[3], tokens[3] = np.inf, -1                      # a row without neighbours
    dist[5, :2], tokens[7, 1:] = np.inf, -1              # empty slots
    y = rng.integers(0, vocab, n)
    y[9] = tokens[9, 0]
    logits = torch.randn(n, vocab)
    dense = interpolate(logits, knn_log_probs(dist, tokens, vocab, 0.7), lam).gather(1, torch.as_tensor(y)[:, None])
    p, has = knn_target_probs(dist, tokens, y, 0.7)
    assert has.tolist() == [i != 3 for i in range(n)]
    lm = torch.log_softmax(logits, -1).gather(1, torch.as_tensor(y)[:, None])[:, 0]
    got = mix_target_log_probs(lm, p, has, lam)
    finite = torch.isfinite(dense[:, 0])
    torch.testing.assert_close(got[finite], dense[finite, 0], rtol=1e-5, atol=1e-5)
    assert bool((~torch.isfinite(got) == ~finite).all())


def test_target_path_bad_arguments():
    d, t = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int64)
    with pytest.raises(InputError, match="temperature"):
        knn_target_probs(d, t, [0, 1], 0.0)
    with pytest.raises(InputError, match="targets"):
        knn_target_probs(d, t, [0], 1.0)
    with pytest.raises(InputError, match="lambda"):
        mix_target_log_probs(torch.zeros(2), torch.zeros(2), torch.ones(2, dtype=torch.bool), 1.5)
