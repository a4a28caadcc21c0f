"""scripts/gpu_check_sched.py refuses at once, naming what is missing, where there is no CUDA."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[3] / "scripts" / "gpu_check_sched.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is here: the check would run")
def test_gpu_check_fails_fast_without_cuda(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "needs CUDA" in r.stderr and ("without CUDA" in r.stderr or "sees no GPU" in r.stderr)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["ok"] and "needs CUDA" in summary["error"] and not (tmp_path / "log.txt").exists()
