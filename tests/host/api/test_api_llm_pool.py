"""The API over two LLM nodes of one model (llm_node.pool): both serve; with one stopped, completions still
succeed and equal the in-process engine's; /ready and /metrics report each node; with none left, a clear 503."""
import json
import urllib.error
import urllib.request

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from host.cli import main
from llm_node.engine.sequence import SamplingParams

pytestmark = pytest.mark.timeout(120)
PROMPT = [5, 6, 7]


def _get(base: str, path: str):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _per_node(base: str, name: str) -> dict:
    _, text = _get(base, "/metrics")
    return {s.labels["node"]: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if s.name == name and s.labels.get("role", "llm-node") == "llm-node"}


def test_completions_survive_a_stopped_llm_node(tokenized_gpt2, api_tools, capsys):
    make_engine, serving = api_tools
    seq, = make_engine(tokenized_gpt2).generate([PROMPT], SamplingParams(temperature=0, max_tokens=5))
    with serving(tokenized_gpt2, llm_nodes=2) as (loop, nodes, address, api, base):
        want = api.backend.decode(seq.completion_ids[:-1] if seq.finish_reason == "stop" else seq.completion_ids)
        a, b = address.split(",")
        with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
            def complete():
                return c.completions.create(model="tiny", prompt=PROMPT, max_tokens=5, temperature=0).choices[0].text

            assert [complete() for _ in range(4)] == [want] * 4
            served = _per_node(base, "anole_llm_node_requests_total")
            assert served[a] >= 1 and served[b] >= 1                     # spread over both (+1 warm-up each)
            assert _per_node(base, "anole_node_up") == {a: 1.0, b: 1.0}
            status, body = _get(base, "/ready")
            assert status == 200 and json.loads(body)["llm_nodes"] == {a: True, b: True}

            loop.run(nodes[0].close())                                   # one LLM node stops
            assert [complete() for _ in range(4)] == [want] * 4
            status, body = _get(base, "/ready")
            ready = json.loads(body)
            assert status == 200 and ready["ready"] is True and ready["llm_nodes"] == {a: False, b: True}
            assert _per_node(base, "anole_node_up") == {a: 0.0, b: 1.0}
            assert main(["status", base]) == 0
            assert capsys.readouterr().out == f"{base}  api  models ['tiny']  ready  LLM nodes not answering: {a}\n"

            loop.run(nodes[1].close())                                   # none left: a clear 503
            with pytest.raises(openai.InternalServerError, match="LLM node"):
                complete()
            status, body = _get(base, "/ready")
            assert status == 503 and json.loads(body)["checks"]["llm_node"] is False
