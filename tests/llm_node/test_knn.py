"""The target-only kNN-LM arithmetic equals the dense p_knn matrix and interpolation at the targets."""
import numpy as np
import pytest
import torch

from host.spec.errors import InputError
from llm_node.knn import interpolate, knn_log_probs, knn_target_probs, mix_target_log_probs


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


def test_bad_arguments():
    d, t = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int64)
    with pytest.raises(InputError, match="temperature"):
        knn_target_probs(d, t, [0, 1], 0.0)
    with pytest.raises(InputError, match="targets"):
        knn_target_probs(d, t, [0], 1.0)
    with pytest.raises(InputError, match="lambda"):
        mix_target_log_probs(torch.zeros(2), torch.zeros(2), torch.ones(2, dtype=torch.bool), 1.5)
