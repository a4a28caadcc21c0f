"""Leakage check: hashed n-gram matches equal a brute-force set of tuples; the split perplexities."""
import numpy as np
import pytest

from host.ralm.leakage import leaked, ngram_hashes, split_perplexity
from host.spec.errors import InputError


@pytest.mark.parametrize("n", [1, 3, 16])
def test_leaked_equals_brute_force(n):
    rng = np.random.default_rng(n)
    train = rng.integers(0, 6, 3000)
    stream = np.concatenate([rng.integers(0, 6, 200), train[500:540], rng.integers(0, 6, 100)])
    grams = {tuple(train[i:i + n]) for i in range(len(train) - n + 1)}
    want = [i + 1 >= n and tuple(stream[i + 1 - n:i + 1]) in grams for i in range(len(stream) - 1)]
    got = leaked(train, stream, n)
    assert got.tolist() == want
    if n == 16:
        assert 40 - 16 <= got.sum() < len(got)      # the copied stretch, and not much more by chance


def test_hashes_distinguish_order_and_handle_short_input():
    assert ngram_hashes(np.array([1, 2, 3]), 4).size == 0
    h = ngram_hashes(np.array([1, 2, 2, 1]), 2)
    assert len(set(h.tolist())) == 3
    assert leaked(np.array([1, 2]), np.array([5]), 16).size == 0
    with pytest.raises(InputError, match="n-gram"):
        ngram_hashes(np.array([1, 2]), 0)


def test_split_perplexity():
    nll = np.log([2.0, 2.0, 8.0, 8.0])
    assert split_perplexity(nll, [True, True, False, False]) == pytest.approx((2.0, 8.0))
    assert split_perplexity(nll, [False] * 4) == (None, pytest.approx(4.0))
