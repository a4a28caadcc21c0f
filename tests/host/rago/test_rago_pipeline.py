"""The whole kNN-LM pipeline on localhost against the model's prediction; the per-token retrieval model."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from host.index.builder import BuildConfig
from host.cli import main
from host.rago.coeff import SchemaError
from host.rago.findings import paradigm
from host.rago.optimizer import Optimizer
from host.rago.perf_model import PerfModel
from host.rago.pipeline import PipelineConfig, fit_engine_overhead, run
from host.rago.schema import load_schema
from llm_node.profiler import ProfileConfig

transformers = pytest.importorskip("transformers")
LATENCY = Path(__file__).parents[2] / "llm_node" / "sim" / "data" / "latency-cpu.json"


def per_token(schema):
    """``schema`` with retrieval before every output token (kNN-LM)."""
    r = dataclasses.replace(schema.retrieval, retrievals_per_request=schema.llm("decode").output_tokens,
                            retrieved_tokens=0)
    return dataclasses.replace(schema, stages={**schema.stages, "retrieval": r})


def test_per_token_retrieval_is_lock_step():
    s = per_token(paradigm("iterative"))
    pm = PerfModel(s)
    assert pm.per_token_retrieval
    out = s.llm("decode").output_tokens
    resid, busy, active = pm.decode_residence(8, 1, 1, kind="cpu_server", nodes=4, rbatch=8)
    step = pm.stage_latency("decode", 8, 1)
    stall = pm.retrieval("cpu_server", 4, 8).total_s + float(s.resources.network.rpc_latency_us) * 1e-6
    assert resid == pytest.approx(out * step + (out - 1) * stall)
    assert busy == pytest.approx(out * step / 8) and active == pytest.approx(out * step / resid)
    assert pm.decode_residence(8, 1, 1, kind="cpu_server", nodes=4, rbatch=4)[0] == float("inf")
    groups = [{"stages": ["prefix", "decode"], "chips": 1, "tp": 1, "batch": {"prefix": 8, "decode": 8}}]
    plan = Optimizer(s).evaluate(groups, {"kind": "cpu_server", "nodes": 4, "batch": 8})
    assert plan.tpot_s == pytest.approx(resid / out)
    with pytest.raises(SchemaError, match="lock-step"):
        Optimizer(s).evaluate(groups, {"kind": "cpu_server", "nodes": 4, "batch": 4})
    assert all(p.retrieval["batch"] == p.groups[-1]["batch"]["decode"]
               for p in Optimizer(s).frontier() if "decode" in p.groups[-1]["stages"])


def test_engine_overhead_fit_recovers_a_line():
    from host.rago.llm_latency import FittedLatency

    fwd = FittedLatency(LATENCY)
    pts = [{"batch": b, "step_s": fwd.decode_step(b, 48) + 300e-6 + 80e-6 * b} for b in (1, 2, 4, 8)]
    fit = fit_engine_overhead(pts, LATENCY, 48)
    assert fit["step_us"] == pytest.approx(300, rel=1e-6) and fit["step_per_seq_us"] == pytest.approx(80, rel=1e-6)
    one = fit_engine_overhead(pts[:1], LATENCY, 48)
    assert one["step_us"] == pytest.approx(380, rel=1e-6) and one["step_per_seq_us"] == 0


def test_profile_grid_fits_a_short_model():
    cfg = ProfileConfig()
    assert cfg.within(10_000) is cfg
    short = cfg.within(128)
    assert max(n + c for n, c in short.prefill_grid) < 128 and max(c for _, c in short.decode_grid) < 128
    assert all(n >= 1 for n, _ in short.prefill_grid) and len(short.mixed_grid) == len(cfg.mixed_grid)


@pytest.fixture(scope="module")
def tiny_knn(tmp_path_factory):
    from host.ralm.datastore import DatastoreConfig, build_knn_datastore
    from llm_node.config import EngineConfig
    from llm_node.engine.llm_engine import LLMEngine

    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=120, n_positions=128,
                                  bos_token_id=0, eos_token_id=0)
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(root / "model")
    stream = np.random.default_rng(0).integers(1, 120, 3000).tolist()
    build_knn_datastore(LLMEngine(EngineConfig(root / "model", block_size=4, num_kv_blocks=128)), stream,
                        root / "ds", DatastoreConfig(BuildConfig(nlist=16, m=8), shards=2), window=64)
    return root


@pytest.mark.timeout(600)
def test_pipeline_measured_and_predicted(tiny_knn, tmp_path):
    cfg = PipelineConfig(model=tiny_knn / "model", datastore=tiny_knn / "ds", workdir=tmp_path, concurrency=(1, 2),
                         waves=3, max_tokens=8, prompt_tokens=8, nprobe=4, k=8, profile_repeats=1)
    lines = []
    res = run(cfg, out=lines.append)
    schema = load_schema(res["schema"])
    assert PerfModel(schema).per_token_retrieval and schema.resources.cpu_server.count == 2
    meas = json.loads(Path(res["measurements"]).read_text())
    assert [r["concurrency"] for r in meas["runs"]] == [1, 2]
    assert all(r["queries"] == 3 * r["concurrency"] * 8 for r in meas["runs"])     # one query per token
    checks = res["checks"]
    assert [(c.what, c.quantity) for c in checks] == [("pipeline", q) for q in ("ttft_ms", "tpot_ms", "qps")] * 2
    # how close the predictions come depends on the machine's load: `anole rago pipeline` prints it
    assert all(c.predicted > 0 and c.measured > 0 for c in checks), lines[-1]
    cal = json.loads((tmp_path / "calibration.json").read_text())
    assert cal["llm_node"]["step_us"] >= 0 and cal["rpc"]["coordinator_us"] >= 0
    assert "mean |error|" in lines[-1]
    # the files it wrote are what `anole rago validate` reads
    assert main(["rago", "validate", res["measurements"], "--schema", res["schema"], "--calibration",
                 str(tmp_path / "calibration.json")]) == 0


def test_pipeline_cli_refuses_missing_inputs(tmp_path, capsys):
    assert main(["rago", "pipeline", "--model", str(tmp_path), "--datastore", str(tmp_path)]) == 2
    assert "--model" in capsys.readouterr().err
    with pytest.raises(Exception, match="concurrency"):
        PipelineConfig(model=tmp_path, datastore=tmp_path, concurrency=(0,))
