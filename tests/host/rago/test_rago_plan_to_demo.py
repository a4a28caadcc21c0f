"""A plan from `anole rago optimize --plan-out` configures the localhost system (`anole demo --plan`)."""
import json
from pathlib import Path

import pytest

from host.cli import demo as demo_command, main
from host.rago.plan import MAX_LOCAL_NODES, demo_settings
from host.serve.coordinator import CoordinatorConfig
from host.spec.errors import InputError

SCHEMA = Path(__file__).parents[3] / "host" / "rago" / "paradigms" / "iterative.yaml"


def test_plan_out_drives_the_demo(tmp_path, monkeypatch, capsys):
    plan_file = tmp_path / "plan.json"
    assert main(["rago", "optimize", str(SCHEMA), "--plan-out", str(plan_file)]) == 0
    plan = json.loads(plan_file.read_text())
    settings = demo_settings(plan)
    assert settings["max_batch"] == plan["coordinator"]["max_batch"] >= 1
    assert settings["shards"] == min(plan["coordinator"]["memory_nodes"], MAX_LOCAL_NODES)
    CoordinatorConfig(max_batch=settings["max_batch"], max_wait_s=settings["max_wait_s"])   # valid as a config

    seen = {}
    monkeypatch.setattr(demo_command, "run", lambda cfg: seen.setdefault("cfg", cfg))
    assert main(["demo", "--plan", str(plan_file), "--workdir", str(tmp_path / "w")]) == 0
    cfg = seen["cfg"]
    assert (cfg.shards, cfg.max_batch, cfg.max_wait_s) == (settings["shards"], settings["max_batch"],
                                                          settings["max_wait_s"])


def test_bad_plans_are_refused(tmp_path, capsys):
    with pytest.raises(InputError, match="not a plan"):
        demo_settings({"coordinator": {"max_batch": 4}})
    with pytest.raises(InputError, match="impossible"):
        demo_settings({"coordinator": {"max_batch": 0, "max_wait_s": 0, "memory_nodes": 1, "llm_nodes": 1}})
    bad = tmp_path / "p.json"
    bad.write_text("{nope")
    assert main(["demo", "--plan", str(bad)]) == 2
    assert "cannot read plan" in capsys.readouterr().err
