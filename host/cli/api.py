"""`anole serve api` (the OpenAI-compatible HTTP front door) and `anole status` (what each running node says)."""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from host.api.protocol import RETRIEVAL_KINDS
from host.cli.common import group
from host.net.client import RpcClient
from host.net.frames import RpcError, parse_address
from host.ralm.tuned import load_tuned
from host.serve import wire
from host.spec.errors import InputError
from llm_node.defaults import DEMO_MODEL


def register(sub, groups):
    serve = group(sub, groups, "serve", "run a server: memory-node, coordinator, llm-node, api")
    p = serve.add_parser("api", help="the OpenAI-compatible HTTP API over an LLM node and memory nodes",
                         description="Serve /v1/completions, /v1/chat/completions, /v1/models (OpenAI-compatible, "
                                     "streaming by server-sent events), /metrics (Prometheus), /health and /ready, in "
                                     "front of a running LLM node and, for retrieval, the memory nodes of a kNN-LM "
                                     "and/or a chunk datastore (docs/api.md).")
    p.add_argument("--llm-node", required=True,
                   help="H:P,H:P,...: running `anole serve llm-node`s of one model (several: failover)")
    p.add_argument("--model", default=str(DEMO_MODEL),
                   help=f"the checkpoint folder the LLM node serves: tokenizer, chat template (default {DEMO_MODEL})")
    p.add_argument("--served-model-name", help="the model id clients ask for (default: the folder's name)")
    p.add_argument("--knn", help="kNN-LM datastore folder (`anole ralm build knn`)")
    p.add_argument("--knn-nodes", help="H:P,H:P,...: the memory nodes serving --knn, one per shard")
    p.add_argument("--chunks", help="chunk datastore folder (`anole ralm build chunks`)")
    p.add_argument("--chunk-nodes", help="H:P,H:P,...: the memory nodes serving --chunks")
    p.add_argument("--retrieval", choices=RETRIEVAL_KINDS,
                   help="default per request (default: knn, else chunks, else none)")
    p.add_argument("--nprobe", type=int, help="default lists probed (default: the datastore's tuned.json, else 8)")
    p.add_argument("--k", type=int, help="default neighbours (default: tuned.json, else 10)")
    p.add_argument("--lam", type=float, help="default kNN-LM lambda (default: tuned.json, else 0.25)")
    p.add_argument("--knn-temperature", type=float, help="default kNN softmax temperature (default: tuned.json, else 0.3)")
    p.add_argument("--interval", type=int, help="default type-1 tokens between retrievals (default 16)")
    p.add_argument("--max-n", type=int, default=8, help="largest n (choices per request, default 8)")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="larger request bodies get 413 (default 16)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000, 0 = any free port)")
    p.add_argument("--ssl-certfile", help="PEM certificate (chain): serve HTTPS (default: plain HTTP)")
    p.add_argument("--ssl-keyfile", help="PEM private key of --ssl-certfile (default: inside the certfile)")
    p.set_defaults(func=serve_api)

    p = sub.add_parser("status", help="role, shard, load, counters and latency percentiles of running nodes",
                       description="Ask each address (memory node, coordinator or LLM node: H:P; the API: "
                                   "http://H:P) what it is and how it is doing.")
    p.add_argument("addresses", help="H:P,H:P,http://H:P,...")
    p.add_argument("--json", action="store_true", help="print one JSON object per node")
    p.set_defaults(func=status)


def _nodes(value: str | None) -> list[str]:
    return [a.strip() for a in (value or "").split(",") if a.strip()]


def _retrieval_defaults(args) -> dict:
    """RalmConfig fields: the flags given, else the settings chosen on dev and saved beside the datastores
    (tuned.json, `anole ralm eval`), else RalmConfig's own defaults."""
    tuned: dict = {}
    knn = load_tuned(args.knn) if args.knn else None
    chunks = load_tuned(args.chunks) if args.chunks else None
    if knn is not None:
        tuned.update(nprobe=knn.nprobe, k=knn.k, lam=knn.lam, knn_temperature=knn.temperature)
    if chunks is not None and args.nprobe is None:
        tuned["chunk_nprobe"] = chunks.nprobe
    given = {"nprobe": args.nprobe, "k": args.k, "lam": args.lam, "knn_temperature": args.knn_temperature,
             "interval": args.interval}
    return tuned | {k: v for k, v in given.items() if v is not None}


def serve_api(args) -> int:
    from host.api.config import ApiConfig  # lazy: torch
    from host.api.server import run_api  # lazy: torch
    from host.ralm.flows import RalmConfig  # lazy: torch

    ralm = RalmConfig(**_retrieval_defaults(args))
    cfg = ApiConfig(model=Path(args.model), llm_node=args.llm_node, served_model_name=args.served_model_name,
                    knn=args.knn and Path(args.knn), knn_nodes=_nodes(args.knn_nodes),
                    chunks=args.chunks and Path(args.chunks), chunk_nodes=_nodes(args.chunk_nodes),
                    retrieval=args.retrieval, ralm=ralm, max_n=args.max_n,
                    max_body_mb=args.max_body_mb, ssl_certfile=args.ssl_certfile and Path(args.ssl_certfile),
                    ssl_keyfile=args.ssl_keyfile and Path(args.ssl_keyfile))
    embedder = None
    if cfg.chunks is not None:
        from host.ralm.corpus import Embedder  # lazy: torch (MiniLM)
        embedder = Embedder()
    run_api(cfg, args.host, args.port, embedder,
            on_ready=lambda h, p: print(f"api listening on {h}:{p}", flush=True))
    return 0


async def _rpc_status(address: str) -> dict:
    host, port = parse_address(address)
    client = await RpcClient.connect(host, port, timeout=10.0)
    try:
        info = await client.call(wire.T_INFO)
        if info.get("role") in ("memory-node", "coordinator"):
            info["stats"] = await client.call(wire.T_STATS)
        return info
    finally:
        await client.close()


def _http_status(base: str) -> dict:
    out = {"role": "api"}
    for path in ("/ready", "/v1/models"):
        try:
            with urllib.request.urlopen(base.rstrip("/") + path, timeout=10) as r:
                out[path] = json.loads(r.read())
        except urllib.error.HTTPError as e:
            out[path] = json.loads(e.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise InputError(f"{base}: {e}") from None
    return out


def _line(address: str, s: dict) -> str:
    """One human line per node."""
    role = s.get("role")
    pct = lambda d, n: " ".join(f"{k[len(n) + 1:-3]}={d[k]:.2f}" for k in d if k.startswith(n + "_p"))  # noqa: E731
    if role == "memory-node":
        st = s["stats"]
        return (f"{address}  memory-node  shard {s['shard']}/{s['nshards']}  backend {s['backend']}  "
                f"{s['ntotal']:,} codes  requests {st['requests']} queries {st['queries']} errors {st['errors']}  "
                f"scan ms {pct(st, 'scan') or '-'}")
    if role == "coordinator":
        st = s["stats"]
        return (f"{address}  coordinator  {len(s['nodes'])} memory nodes  requests {st['requests']} queries "
                f"{st['queries']} batches {st['batches']} errors {st['errors']}  search ms {pct(st, 'search') or '-'}")
    if role == "llm-node":
        used = s["num_kv_blocks"] - s["free_kv_blocks"]
        return (f"{address}  llm-node  {s['architecture']}  running {s['running']} waiting {s['waiting']}  "
                f"kv {used}/{s['num_kv_blocks']} blocks  requests {s['requests']} tokens {s['tokens']} aborted "
                f"{s['aborted']} errors {s['errors']}  ttft ms {pct(s, 'ttft') or '-'}  tbt ms {pct(s, 'tbt') or '-'}")
    if role == "api":
        ready = s["/ready"]
        models = [m["id"] for m in s["/v1/models"].get("data", [])]
        down = [k for k, ok in ready.get("checks", {}).items() if not ok]
        gone = [a for a, ok in ready.get("llm_nodes", {}).items() if not ok]
        return (f"{address}  api  models {models}  {'ready' if ready.get('ready') else 'NOT ready: ' + ', '.join(down)}"
                + (f"  LLM nodes not answering: {', '.join(gone)}" if gone else ""))
    return f"{address}  {role}"


def status(args) -> int:
    addresses = _nodes(args.addresses)
    if not addresses:
        raise InputError("give at least one address")
    failed = 0
    for a in addresses:
        try:
            s = _http_status(a) if a.startswith("http") else asyncio.run(_rpc_status(a))
        except (RpcError, InputError) as e:
            failed += 1
            print(f"{a}  unreachable: {e}")
            continue
        print(json.dumps({"address": a, **s}, default=_plain) if args.json else _line(a, s))
    if failed:
        raise InputError(f"{failed} of {len(addresses)} nodes did not answer")
    return 0


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def generate_remote(args, prompt_ids: list[int] | None) -> int:
    """`anole generate --server`: through an API (http://H:P, streamed) or LLM nodes (H:P[,H:P...])."""
    sampling = {"max_tokens": args.max_new_tokens, "temperature": 0.0 if args.greedy else args.temperature,
                "top_p": args.top_p, "seed": args.seed}
    if args.server.startswith("http"):
        if args.top_k or args.ignore_eos:
            raise InputError("--top-k and --ignore-eos are not in the OpenAI API; use --server H:P of the LLM node")
        return _generate_http(args.server.rstrip("/"), args.prompt if prompt_ids is None else prompt_ids,
                              sampling, args.json)
    fields = dict(sampling, top_k=args.top_k, ignore_eos=args.ignore_eos)
    if prompt_ids is None:
        fields["prompt"] = args.prompt
    else:
        fields["prompt_ids"] = np.asarray(prompt_ids, np.int64)
    final = asyncio.run(_generate_rpc(args.server, fields))
    text = final.get("text")
    if args.json:
        timings = {"ttft_s": final["ttft"], "ttlt_s": final["ttlt"], "tbt_s": final["tbt"].tolist()}
        print(json.dumps({"token_ids": final["token_ids"].tolist(), "text": text,
                          "finish_reason": final["finish_reason"], "timings": timings}))
    else:
        print(text if text is not None else ",".join(map(str, final["token_ids"].tolist())))
    return 0


async def _generate_rpc(addresses: str, fields: dict) -> dict:
    """One generation through the LLM node(s) at 'H:P[,H:P...]' (llm_node.pool: failover before the first token)."""
    from llm_node.pool import LLMPool  # lazy: torch

    pool = await LLMPool.connect(addresses, timeout=120.0)
    try:
        items = [item async for item in pool.generate(fields.pop("prompt_ids", None), **fields)]
    finally:
        await pool.close()
    if items[-1].get("error"):
        raise InputError(f"{addresses}: {items[-1]['error']}")
    return items[-1]


def _generate_http(base: str, prompt, sampling: dict, as_json: bool) -> int:
    try:
        with urllib.request.urlopen(base + "/v1/models", timeout=30) as r:
            model = json.loads(r.read())["data"][0]["id"]
        body = json.dumps({"model": model, "prompt": prompt, **sampling, "stream": not as_json}).encode()
        req = urllib.request.Request(base + "/v1/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            if as_json:
                print(r.read().decode())
                return 0
            for line in r:
                data = line.decode().strip().removeprefix("data: ")
                if data and data != "[DONE]":
                    event = json.loads(data)
                    if "error" in event:
                        raise InputError(f"{base}: {event['error']['message']}")
                    print(event["choices"][0]["text"], end="", flush=True)
            print()
    except urllib.error.HTTPError as e:
        raise InputError(f"{base}: {json.loads(e.read() or b'{}').get('error', {}).get('message', e)}") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as e:
        raise InputError(f"{base}: {e}") from None
    return 0
