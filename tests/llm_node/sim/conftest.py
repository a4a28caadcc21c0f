import json
from pathlib import Path

import pytest

from llm_node.sched.latency import LatencyModel
from llm_node.sched.roofline import roofline_model

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def gpu_model():
    """The analytic H100 roofline (see llm_node/sched/roofline.py)."""
    return roofline_model()


@pytest.fixture(scope="session")
def cpu_model():
    """A latency model measured by `anole llm profile` on this project's 2-core CPU machine (tiny GPT-2)."""
    return LatencyModel.from_dict(json.loads((DATA / "latency-cpu.json").read_text()))
