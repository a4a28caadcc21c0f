"""Dev/test split of the held-out files: by file, seeded, disjoint, never empty."""
import numpy as np
import pytest

from host.ralm.splits import dev_test, split_files
from host.spec.errors import InputError


def test_split_files_is_a_seeded_partition():
    dev, test = split_files(9, seed=0)
    assert sorted(dev + test) == list(range(9)) and not set(dev) & set(test)
    assert len(dev) == round(9 * 0.5) and dev == sorted(dev)
    assert split_files(9, seed=0) == (dev, test)
    assert any(split_files(9, seed=s) != (dev, test) for s in range(1, 5))


@pytest.mark.parametrize("n,frac", [(1, 0.5), (0, 0.5), (3, 0.1), (3, 0.9), (4, 0.0), (4, 1.0)])
def test_empty_part_is_an_error(n, frac):
    with pytest.raises(InputError):
        split_files(n, 0, frac)


def test_dev_test_concatenates_whole_files():
    files = [np.full(i + 1, i) for i in range(6)]
    dev, test = dev_test(files, seed=3)
    d, t = split_files(6, 3)
    assert dev.tolist() == [i for f in d for i in files[f].tolist()]
    assert sorted(set(dev.tolist()) | set(test.tolist())) == list(range(6))
    assert not set(dev.tolist()) & set(test.tolist())
