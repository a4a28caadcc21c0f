"""Latency model: file format, checks, step-time composition; the profiler's fit and a real quick profile."""
import json

import numpy as np
import pytest

from llm_node.profiler import ProfileConfig, fit, prefill_row, profile
from llm_node.sched.latency import DECODE_KEYS, PREFILL_KEYS, LatencyModel, LatencyModelError, Split, pairs
from llm_node.sched.roofline import roofline_model

P = {"c0": 0.01, "tokens": 1e-4, "attn": 1e-7, "context": 1e-6}
D = {"c0": 0.005, "batch": 1e-3, "context": 1e-6}


def model():
    return LatencyModel("t", Split(1.0, P, D), [Split(0.5, {k: 2 * v for k, v in P.items()},
                                                      {k: 1.5 * v for k, v in D.items()}, 1, 1)], 1e-6, units=2)


def test_round_trip_and_errors(tmp_path):
    m = model()
    back = LatencyModel.load(m.save(tmp_path / "m.json"))
    assert back.to_dict() == m.to_dict() and back.shares == [0.5]
    d = json.loads((tmp_path / "m.json").read_text())
    assert d["format"] == "anole-latency/1" and d["splits"][0]["prefill_share"] == 0.5
    with pytest.raises(LatencyModelError, match="not found"):
        LatencyModel.load(tmp_path / "none.json")
    with pytest.raises(LatencyModelError, match="format"):
        LatencyModel.from_dict({**d, "format": "x"})
    del d["full"]["decode"]["batch"]
    with pytest.raises(LatencyModelError, match=r"lack \['batch'\]"):
        LatencyModel.from_dict(d)
    with pytest.raises(LatencyModelError, match="no measured split"):
        m.prefill_time(0.3, 10, 10)


def test_step_time_composes_prefill_and_decode():
    m = model()
    assert m.prefill_chunk(1.0, 100, 50) == pytest.approx(0.01 + 100e-4 + pairs(100, 50) * 1e-7 + 150e-6)
    assert pairs(3, 0) == 6 and pairs(2, 5) == 13
    assert m.decode_time(0.5, 4, 400) == pytest.approx(1.5 * (0.005 + 4e-3 + 400e-6))
    items = [(100, 150, False), (1, 200, True), (1, 300, True)]
    mixed = m.step_time(items)
    assert mixed == pytest.approx(m.prefill_chunk(1.0, 100, 50) + m.decode_time(1.0, 2, 500) - 0.005)
    assert m.step_time([(1, 200, True)], 0.5, "decode") == pytest.approx(m.decode_time(0.5, 1, 200))
    assert m.step_time([(100, 150, False)], 0.5, "prefill") == pytest.approx(m.prefill_chunk(0.5, 100, 50))


def test_fit_recovers_known_coefficients():
    grid = [(32, 0), (128, 0), (512, 0), (64, 512), (256, 256), (16, 1024)]
    rows = [prefill_row(n, c) for n, c in grid]
    truth = np.array([P[k] for k in PREFILL_KEYS])
    coef, err = fit(rows, np.asarray(rows) @ truth, PREFILL_KEYS)
    assert err < 1e-6 and all(coef[k] == pytest.approx(P[k], rel=1e-4) for k in PREFILL_KEYS)


def test_roofline_decode_loses_little_on_a_small_partition():
    m = roofline_model()
    assert m.backend == "cuda" and m.extra["analytic"] and m.shares == [0.25, 0.375, 0.5, 0.625, 0.75]
    full, part = m.decode_time(1.0, 32, 32 * 1000), m.decode_time(0.5, 32, 32 * 1000)
    assert part < 1.25 * full  # vs 2x for a compute-bound phase
    assert m.prefill_chunk(0.5, 2048) > 1.8 * m.prefill_chunk(1.0, 2048)


def test_quick_profile_on_cpu(gpt2_checkpoint, tmp_path):
    from llm_node.config import EngineConfig
    from llm_node.engine.llm_engine import LLMEngine

    eng = LLMEngine(EngineConfig(gpt2_checkpoint[1], block_size=8, num_kv_blocks=256))
    cfg = ProfileConfig(prefill_grid=((8, 0), (32, 0), (16, 32), (8, 64)), decode_grid=((1, 16), (4, 16), (2, 48)),
                        repeats=1, splits=(1,), background_decode=(4, 32), background_prefill=(32, 0),
                        mixed_grid=(((16, 0), (2, 16)), ((8, 32), (4, 8))))
    m = profile(eng, cfg)
    assert m.backend == "cpu" and "CPU analogue" in m.device and m.shares == [m.splits[0].prefill_units / m.units]
    for sp in [m.full, *m.splits]:
        assert set(sp.prefill) == set(PREFILL_KEYS) and set(sp.decode) == set(DECODE_KEYS)
        assert min(sp.prefill.values()) >= 0 and m.prefill_chunk(sp.prefill_share, 32) > 0
    assert m.kv_transfer_s_per_token > 0 and set(m.extra["fit"]) == {str(m.units), "1", "mixed"}
    mixed = m.extra["fit"]["mixed"]
    assert m.pad >= 0 and mixed["mixed_sse"] <= mixed["mixed_sse_no_pad"] * (1 + 1e-9)   # least squares, pad >= 0
    assert eng.block_manager.num_free_blocks == 256
    LatencyModel.load(m.save(tmp_path / "cpu.json"))


def test_profile_command_is_registered():
    from host.cli import build_parser

    args = build_parser().parse_args(["llm", "profile", "--quick", "--out", "x.json"])
    assert args.quick and args.out == "x.json" and args.func.__name__ == "profile_cmd"


def test_scheduler_flags_build_policies(tmp_path):
    import argparse

    from host.cli.sched import add_scheduler_args, policy_from_args
    from llm_node.sched.base import LanePolicy
    from llm_node.sched.latency import LatencyModelError

    p = argparse.ArgumentParser()
    add_scheduler_args(p)
    path = model().save(tmp_path / "m.json")
    assert isinstance(policy_from_args(p.parse_args(["--scheduler", "pd_mux", "--latency-model", str(path)])),
                      LanePolicy)
    assert policy_from_args(p.parse_args(["--latency-model", str(tmp_path / "none.json")])).name == "fcfs"
    with pytest.raises(LatencyModelError, match="anole llm profile"):
        policy_from_args(p.parse_args(["--scheduler", "tempo", "--latency-model", str(tmp_path / "none.json")]))


def test_padding_cost_applies_to_mixed_steps_only():
    m = model()
    items = [(100, 150, False), (1, 200, True), (1, 300, True)]
    base = m.step_time(items)
    m.pad = 1e-9
    assert m.step_time(items) == pytest.approx(base + 1e-9 * (3 * 100 * 300 - 100 * 150 - 200 - 300))
    assert m.step_time([(100, 150, False)]) == pytest.approx(m.prefill_chunk(1.0, 100, 50))
    assert LatencyModel.from_dict(m.to_dict()).pad == 1e-9
