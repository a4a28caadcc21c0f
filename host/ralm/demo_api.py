"""The demo's last act: the same RALM through the OpenAI-compatible HTTP API (`anole serve api`), one streamed
`curl -N` call and one call with the official `openai` client, as any OpenAI application would make them."""
from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request


def api_args(cfg, llm_addr: str, knn_dir, chunk_dir, addrs: dict) -> list[str]:
    """`anole serve api ...` in front of the demo's LLM node and memory nodes (kNN-LM as the default)."""
    nodes = lambda name: ",".join(a for (n, _), a in sorted(addrs.items()) if n == name)  # noqa: E731
    return ["serve", "api", "--llm-node", llm_addr, "--model", str(cfg.model), "--served-model-name", "anole-demo",
            "--knn", str(knn_dir), "--knn-nodes", nodes("knn"), "--chunks", str(chunk_dir),
            "--chunk-nodes", nodes("chunks"), "--nprobe", str(cfg.nprobe), "--k", str(cfg.k), "--lam", str(cfg.lam),
            "--knn-temperature", str(cfg.knn_temperature), "--interval", str(cfg.interval), "--port", "0"]


def show_api(base: str, max_tokens: int, out) -> dict:
    """Stream one kNN-LM completion with curl -N, then ask for a type-1 chat completion with the openai client."""
    body = {"model": "anole-demo", "prompt": "import os\nimport sys\n\n\ndef main(", "max_tokens": max_tokens,
            "temperature": 0.8, "seed": 0, "stream": True, "retrieval": {"type": "knn"}}
    cmd = ["curl", "-sN", f"{base}/v1/completions", "-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out(f"\n  $ curl -N {base}/v1/completions -H 'Content-Type: application/json' -d '{json.dumps(body)}'")
    if shutil.which("curl"):
        lines = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout.splitlines()
    else:                                     # the same request without curl
        req = urllib.request.Request(cmd[2], json.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            lines = r.read().decode().splitlines()
    events = [ln for ln in lines if ln.startswith("data: ")]
    for ln in events[:3] + (["..."] if len(events) > 5 else []) + events[-2:]:
        out(f"  {ln}")
    streamed = "".join(json.loads(ln[6:])["choices"][0]["text"] for ln in events
                       if ln != "data: [DONE]" and json.loads(ln[6:]).get("choices"))
    out(f"  -> {len(events) - 1} chunks, text {streamed!r}")

    from openai import OpenAI  # the official client (a test dependency: `make demo` installs it)

    out(f"\n  >>> OpenAI(base_url='{base}/v1').chat.completions.create(model='anole-demo', messages=[...], "
        "extra_body={'retrieval': {'type': 'chunks'}})")
    with OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as client:
        r = client.chat.completions.create(
            model="anole-demo", max_tokens=max_tokens, temperature=0.8, seed=1,
            messages=[{"role": "user", "content": "How do I parse a JSON document from a string?"}],
            extra_body={"retrieval": {"type": "chunks"}})
    out(f"  -> {r.choices[0].message.content!r} (finish {r.choices[0].finish_reason}, usage "
        f"{r.usage.prompt_tokens}+{r.usage.completion_tokens} tokens)")
    with urllib.request.urlopen(f"{base}/metrics", timeout=30) as m:
        metrics = [ln for ln in m.read().decode().splitlines() if ln.startswith("anole_api_requests_total")]
    out(f"  $ curl {base}/metrics | grep anole_api_requests_total\n  " + "\n  ".join(metrics))
    return {"curl_text": streamed, "chat_text": r.choices[0].message.content}
