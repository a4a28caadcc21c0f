"""Bad input gets an OpenAI error object with the right status, nothing is left running, the server keeps
serving; a client that leaves mid-stream cancels its generation; tokenization runs off the event loop."""
import http.client
import json
import logging
import socket
import threading
import time
import urllib.request

import pytest

from host.net.client import SyncClient
from llm_node.server import T_INFO

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.timeout(120)


def post(base: str, path: str, body: bytes | str, headers: dict | None = None):
    """(status, parsed JSON body, response headers) of one raw HTTP POST."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null"), dict(r.getheaders())
    finally:
        conn.close()


def metric(base: str, name: str) -> float:
    """One sample of /metrics by its exposition name (0 if absent)."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    return 0.0


def node_info(address: str) -> dict:
    host, port = address.split(":")
    with SyncClient(host, int(port)) as c:
        return c.call(T_INFO)


def wait_idle(address: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = node_info(address)
        if info["running"] == 0 and info["waiting"] == 0 and info["free_kv_blocks"] == info["num_kv_blocks"]:
            return info
        time.sleep(0.05)
    raise AssertionError(f"the LLM node did not become idle: {info}")


BAD = [
    ("{not json", 400, "invalid_json", None),
    (dict(model="gpt-4", prompt="x"), 404, "model_not_found", "model"),
    (dict(model="tiny", prompt="x", max_tokens="5"), 400, "invalid_value", "max_tokens"),
    (dict(model="tiny", prompt="x", temperature="hot"), 400, "invalid_value", "temperature"),
    (dict(model="tiny", prompt="x", max_tokens=-3), 400, "invalid_value", "max_tokens"),
    (dict(model="tiny", prompt="x", max_tokens=10 ** 9), 400, "context_length_exceeded", "prompt"),
    (dict(model="tiny", prompt="x", n=1000), 400, None, "n"),
    (dict(model="tiny", prompt="x", top_p=0), 400, "invalid_value", "top_p"),
    (dict(model="tiny", prompt="x", stop=["a", "b", "c", "d", "e"]), 400, None, "stop"),
    (dict(model="tiny", prompt="x", presence_penalty=1.0), 400, "invalid_value", "presence_penalty"),
    (dict(model="tiny", prompt="x", frobnicate=True), 400, "invalid_value", "frobnicate"),
    (dict(model="tiny", prompt=[1, 2, 99999]), 400, None, "prompt"),
    (dict(model="tiny", prompt="def " * 200), 400, "context_length_exceeded", "prompt"),
    (dict(model="tiny", prompt="x", retrieval={"type": "knn"}), 400, None, "retrieval.type"),
    (dict(model="tiny", prompt="x", retrieval={"lambda": 2}), 400, "invalid_value", "retrieval.lambda"),
    (dict(model="tiny", prompt="x", stream=True, max_tokens=500), 400, "context_length_exceeded", "prompt"),
]


@pytest.mark.parametrize("body, status, code, param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_openai_errors(api, body, status, code, param):
    _, _, address, _, base = api
    got, err, _ = post(base, "/v1/completions", body if isinstance(body, str) else json.dumps(body))
    assert got == status, err
    e = err["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"]
    assert e["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert (e["code"], e["param"]) == (code, param) if code else e["param"] == param


def test_a_body_over_the_limit_is_refused_before_it_is_read(api):
    host, port = api[4].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:     # the headers only: nothing is read
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (17 << 20))
        answer = b""
        while b"}}" not in answer:
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413") and json.loads(body)["error"]["code"] == "body_too_large"


def test_the_openai_client_raises_the_matching_errors(api):
    base = api[4]
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as c:
        with pytest.raises(openai.NotFoundError):
            c.completions.create(model="nope", prompt="x")
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4096)
        ok = c.completions.create(model="tiny", prompt="x", max_tokens=3, temperature=0)   # still serving
        assert ok.usage.completion_tokens >= 1
    wait_idle(api[2])


def test_request_id_is_echoed_and_logged_by_the_api_and_the_llm_node(api, caplog):
    with caplog.at_level(logging.INFO):
        body = json.dumps(dict(model="tiny", prompt="x", max_tokens=2))
        status, out, headers = post(api[4], "/v1/completions", body, {"X-Request-Id": "abc123"})
        assert status == 200 and headers["x-request-id"] == "abc123" and out["id"] == "cmpl-abc123"
        wait_idle(api[2])
    access = [r.getMessage() for r in caplog.records if r.name == "host.api.access"]
    node = [r.getMessage() for r in caplog.records if r.name == "llm_node.server"]
    assert len(access) == 1 and access[0].startswith("abc123 POST /v1/completions 200 ok")
    assert f"completion_tokens={out['usage']['completion_tokens']}" in access[0]
    assert len([m for m in node if m.startswith("request cmpl-abc123 ")]) == 1


CANCELLED = 'anole_api_requests_total{endpoint="/v1/completions",outcome="cancelled"}'


@pytest.mark.parametrize("stream, read, free_steps", [(True, 2, 2), (True, 0, 1), (False, 0, 1)],
                         ids=["mid-stream", "before-the-first-token", "not-streamed"])
def test_client_gone_mid_generation_cancels_it(api, stream, read, free_steps):
    _, node, address, _, base = api
    before, cancelled = node_info(address), metric(base, CANCELLED)
    engine = node.worker.engine
    step, steps, held, stalled, gate = engine.step, [0], [], threading.Event(), threading.Event()

    def gated_step():                        # after free_steps the model stalls until the API has given up
        steps[0] += 1
        if steps[0] > free_steps:
            held.append((len(engine.scheduler.running), engine.block_manager.num_free_blocks))
            stalled.set()
            gate.wait(60)
        return step()
    engine.step = gated_step
    try:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = dict(model="tiny", prompt=[5, 6, 7], max_tokens=120, temperature=0.9, seed=1, stream=stream)
        conn.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        if read:
            r = conn.getresponse()
            assert r.status == 200 and r.getheader("content-type").startswith("text/event-stream")
            assert r.readline().startswith(b"data: {")
            r.readline()
        assert stalled.wait(20), "the generation did not start"
        if read:                                                       # it runs, its KV blocks are in use
            assert held[0][0] == 1 and held[0][1] < before["num_kv_blocks"]
        conn.sock.close()
        conn.close()
        deadline = time.monotonic() + 20              # the access log counts the request once its response ended
        while metric(base, CANCELLED) < cancelled + 1:
            assert time.monotonic() < deadline, "the cancelled request was not counted"
            time.sleep(0.05)
        gate.set()                                    # the node now takes the cancel at its next step
        after = wait_idle(address)
    finally:
        gate.set()
        engine.step = step
    assert after["aborted"] == before["aborted"] + 1
    assert metric(base, "anole_api_choices_running") == 0
    assert after["tokens"] - before["tokens"] <= free_steps + 1


def test_tokenizer_runs_off_the_event_loop(api):
    backend = api[3].backend
    encode, threads = backend.tokenizer.encode, []

    def recording(text):
        threads.append(threading.current_thread().name)
        return encode(text)
    backend.tokenizer.encode = recording
    try:
        status, out, _ = post(api[4], "/v1/completions", json.dumps(dict(model="tiny", prompt="x" * 300,
                                                                         max_tokens=2)))
    finally:
        backend.tokenizer.encode = encode
    assert threads and all(t.startswith("tokenize") for t in threads)
    assert status in (200, 400), out
