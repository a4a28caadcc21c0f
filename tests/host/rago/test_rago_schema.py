"""RAG schema loading and validation: shipped paradigms load; bad input names the field."""
import copy
import json

import pytest
import yaml

from host.rago.coeff import Coefficient, SchemaError
from host.rago.findings import FILES, PARADIGMS
from host.rago.schema import load_schema, parse_schema


def base() -> dict:
    return yaml.safe_load((PARADIGMS / FILES["hyperscale"]).read_text())


def parse(d):
    return parse_schema(d, source="schema: test")


@pytest.mark.parametrize("name", sorted(FILES))
def test_paradigms_load(name):
    s = load_schema(PARADIGMS / FILES[name])
    assert {"retrieval", "prefix", "decode"} <= set(s.stages)
    assert s.retrieval.database_bytes > 0


def test_provenance_of_numbers():
    s = load_schema(PARADIGMS / FILES["hyperscale"])
    gpu = s.resources.gpu
    assert gpu.tflops == Coefficient(989.0, "TFLOP/s", "spec: H100 SXM datasheet")
    assert gpu.mfu.source.startswith("assumption:")
    assert s.resources.cpu_server.scan_rate.source.startswith("assumption:")
    assert s.resources.fpga.memory_gb.source == "spec: Alveo U250, 4 x 16 GB DDR4"


def test_json_equals_yaml(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(base()))
    a, b = load_schema(p), load_schema(PARADIGMS / FILES["hyperscale"])
    assert a.stages == b.stages and a.resources.gpu.count == b.resources.gpu.count


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["stages"]["prefix"].update(prompt_tokenz=5), "stages.prefix.prompt_tokenz"),
    (lambda d: d["stages"].update(summarizer={"model": "llama-1b"}), "stages.summarizer"),
    (lambda d: d.update(extra=1), "schema.extra"),
    (lambda d: d["stages"]["retrieval"].update(vectors=-5), "stages.retrieval.vectors"),
    (lambda d: d["stages"]["retrieval"].update(dim=0), "stages.retrieval.dim"),
    (lambda d: d["stages"]["retrieval"].update(nprobe_fraction=2), "stages.retrieval.nprobe_fraction"),
    (lambda d: d["stages"]["prefix"].update(prompt_tokens=1.5), "stages.prefix.prompt_tokens"),
    (lambda d: d["stages"]["prefix"].update(model="gpt-9"), "stages.prefix.model"),
    (lambda d: d["stages"].pop("decode"), "stages.decode"),
    (lambda d: d["models"]["llama-1b"].update(params_b="big"), "models.llama-1b.params_b"),
    (lambda d: d["resources"]["gpu"].update(tflops={"value": 1, "unit": "GFLOP/s"}), "resources.gpu.tflops.unit"),
    (lambda d: d["resources"]["gpu"].update(mem_bw_gbs=-1), "resources.gpu.mem_bw_gbs"),
    (lambda d: d["resources"]["cpu_server"].update(cores=0), "resources.cpu_server.cores"),
    (lambda d: d["search"].update(max_batch=0), "search.max_batch"),
])
def test_bad_fields_are_named(edit, field):
    d = copy.deepcopy(base())
    edit(d)
    with pytest.raises(SchemaError, match=field.replace(".", r"\.")):
        parse(d)


def test_model_larger_than_memory():
    d = base()
    d["stages"]["prefix"]["model"] = d["stages"]["decode"]["model"] = "llama-70b"
    d["resources"]["gpu"]["count"] = 1
    with pytest.raises(SchemaError, match=r"models\.llama-70b: 141 GB of weights need 2 GPUs .* resources\.gpu\.count is 1"):
        parse(d)


def test_database_larger_than_nodes():
    d = base()
    d["resources"]["cpu_server"]["count"] = 2
    del d["resources"]["fpga"]
    with pytest.raises(SchemaError, match=r"stages\.retrieval: the database .* does not fit .*cpu_server: 2 x 1024 GB"):
        parse(d)


def test_no_retrieval_hardware():
    d = base()
    del d["resources"]["fpga"], d["resources"]["cpu_server"]
    with pytest.raises(SchemaError, match="resources.cpu_server or resources.fpga"):
        parse(d)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SchemaError, match="cannot read schema"):
        load_schema(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("stages: [unclosed")
    with pytest.raises(SchemaError, match="not valid YAML"):
        load_schema(tmp_path / "bad.yaml")


def test_with_model_and_without_stage():
    s = load_schema(PARADIGMS / FILES["rewriter_reranker"])
    assert "rewriter" not in s.without("rewriter").stages
    with pytest.raises(SchemaError, match="required"):
        s.without("prefix")
    assert s.with_model(("prefix", "decode"), "llama-8b").llm("decode").model.params_b == pytest.approx(8.03)
