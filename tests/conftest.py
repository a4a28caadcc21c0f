import logging

import numpy as np
import pytest

from host.index.builder import BuildConfig, build_ivfpq
from host.index.datasets import synthetic_clustered
from host.index.index_dir import export_index, load_index

logging.getLogger("numba").setLevel(logging.WARNING)


@pytest.fixture(scope="session")
def small_data():
    """20k clustered vectors of d=32 and 200 queries from the same distribution."""
    x = synthetic_clustered(20_200, 32, seed=1, clusters=100)
    return x[:20_000], x[20_000:]


@pytest.fixture(scope="session")
def small_faiss(small_data):
    base, _ = small_data
    return build_ivfpq(base, BuildConfig(nlist=64, m=8, seed=0))


@pytest.fixture(scope="session")
def small_index(small_faiss, tmp_path_factory):
    """The small index exported over 3 shards and loaded back."""
    out = export_index(small_faiss, tmp_path_factory.mktemp("idx"), nshards=3)
    return load_index(out)


def pytest_collection_modifyitems(items):
    """Long simulations (the `sweep` marker) get an hour before pytest-timeout calls them hung; the rest
    keep pyproject.toml's 900 s."""
    for item in items:
        if item.get_closest_marker("sweep") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(3600))


@pytest.fixture(scope="session")
def tiny_data():
    """3,000 clustered vectors of d=16 and 40 queries: for builds that must stay fast (out of core, import)."""
    x = synthetic_clustered(3_040, 16, seed=3, clusters=30)
    return x[:3_000], x[3_000:]


@pytest.fixture(scope="session")
def small_ip_faiss(small_data):
    """The small data set as an inner-product IndexIVFPQ."""
    base, _ = small_data
    return build_ivfpq(base, BuildConfig(nlist=64, m=8, seed=0, metric="ip"))
