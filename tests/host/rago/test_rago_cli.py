"""`anole rago ...` end to end through host.cli.main."""
import json

import yaml

from host.cli import main
from host.rago.findings import FILES, PARADIGMS


def test_optimize_json_and_plot(tmp_path, capsys):
    png = tmp_path / "f.png"
    assert main(["rago", "optimize", "rewriter_reranker", "--plot", str(png), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert png.stat().st_size > 10_000
    ttft = [p["ttft_ms"] for p in out["frontier"]]
    assert ttft == sorted(ttft) and out["plan"]["placement"].startswith("[")
    assert set(out["plan"]["coordinator"]) == {"max_batch", "max_wait_s", "memory_nodes", "llm_nodes"}
    assert out["coefficients"]["prefix.gpu.tflops"]["source"] == "spec: H100 SXM datasheet"


def test_optimize_text_with_slo(capsys):
    assert main(["rago", "optimize", str(PARADIGMS / FILES["long_context"]), "--slo-ttft", "500"]) == 0
    out = capsys.readouterr().out
    assert "Pareto frontier" in out and "plan: TTFT" in out and "encoder" in out
    assert "(spec: H100 SXM datasheet)" in out


def test_impossible_slo_is_a_clear_error(capsys):
    assert main(["rago", "optimize", "hyperscale", "--slo-ttft", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "no plan meets the SLO (ttft 0.001 ms); the best TTFT is" in err


def test_bad_schema_names_the_field(tmp_path, capsys):
    d = yaml.safe_load((PARADIGMS / FILES["iterative"]).read_text())
    d["stages"]["retrieval"]["vectors"] = -1
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    assert main(["rago", "optimize", str(p)]) == 2
    assert "stages.retrieval.vectors must be > 0, not -1" in capsys.readouterr().err


def test_validate_command(tmp_path, capsys):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"measurements": [{"what": "retrieval", "kind": "cpu_server", "nodes": 1,
                                               "batch": 4, "seconds": 0.01}]}))
    assert main(["rago", "validate", str(m), "--schema", "iterative"]) == 0
    out = capsys.readouterr().out
    assert "retrieval" in out and "mean |error|" in out
    assert main(["rago", "validate", str(m), "--schema", "iterative", "--max-error", "0.0001"]) == 1
