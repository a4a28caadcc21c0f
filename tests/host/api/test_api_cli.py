"""The client CLI against running services: `anole generate --server` (LLM node and API), `anole status`,
`anole search --coordinator`; `anole serve api` refuses bad settings with one line."""
import asyncio
import threading

import numpy as np
import pytest

from host.backends.local_search import LocalSearcher
from host.cli import main
from host.index.datasets import write_vecs
from host.index.index_dir import load_index
from host.serve.coordinator import Coordinator
from host.serve.coordinator_server import CoordinatorServer
from host.serve.memory_node import MemoryNode, MemoryNodeConfig
from host.spec.scan_params import ScanParams
from llm_node.tokenizer import Tokenizer

pytestmark = pytest.mark.timeout(120)
PROMPT = "class JSONDecoder(object):\n"


def test_generate_through_the_llm_node_and_the_api(api, tokenized_gpt2, capsys):
    _, node, address, _, base = api
    tok = Tokenizer(tokenized_gpt2)
    want, = node.engine.generate([tok.encode(PROMPT)], _greedy(8))
    text = tok.decode(want.completion_ids[:-1] if want.finish_reason == "stop" else want.completion_ids)
    assert main(["generate", "--server", address, "--prompt-ids", ",".join(map(str, tok.encode(PROMPT))),
                 "--max-new-tokens", "8", "--greedy"]) == 0
    assert capsys.readouterr().out == tok.decode(want.completion_ids) + "\n"     # the node decodes
    assert main(["generate", "--server", f"127.0.0.1:1,{address}", "--prompt", PROMPT,   # a pool, one node down
                 "--max-new-tokens", "8", "--greedy"]) == 0
    assert capsys.readouterr().out == tok.decode(want.completion_ids) + "\n"
    assert main(["generate", "--server", base, "--prompt", PROMPT, "--max-new-tokens", "8", "--greedy"]) == 0
    assert capsys.readouterr().out == text + "\n"
    assert main(["generate", "--server", base, "--prompt", PROMPT, "--max-new-tokens", "9999"]) == 2
    assert "maximum context length" in capsys.readouterr().err


def _greedy(n):
    from llm_node.engine.sequence import SamplingParams
    return SamplingParams(temperature=0, max_tokens=n)


def test_status_of_an_llm_node_an_api_and_a_dead_address(api, capsys):
    _, _, address, _, base = api
    assert main(["status", f"{address},{base}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{address}  llm-node") and "kv 0/" in lines[0] and "ttft ms p50=" in lines[0]
    assert lines[1].startswith(f"{base}  api  models ['tiny']  ready")
    assert main(["status", f"{address},127.0.0.1:1"]) == 2
    out = capsys.readouterr()
    assert "127.0.0.1:1  unreachable" in out.out and "1 of 2 nodes did not answer" in out.err


@pytest.fixture(scope="module")
def coordinator(small_index):
    """Memory nodes for the 3 shards of the small index and a coordinator server, on a background loop."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    run = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result(60)  # noqa: E731
    nodes = [MemoryNode.open(small_index.path, s, k=10, config=MemoryNodeConfig(backend="reference"))
             for s in range(3)]
    addrs = [f"{h}:{p}" for h, p in (run(n.start()) for n in nodes)]

    async def start():
        coord = Coordinator(load_index(small_index.path, shards=[]), addrs)
        await coord.connect()
        server = CoordinatorServer(coord)
        return coord, server, await server.start()
    coord, server, (host, port) = run(start())
    yield f"{host}:{port}", addrs
    run(server.close())
    run(coord.close())
    for n in nodes:
        run(n.close())
    loop.call_soon_threadsafe(loop.stop)


def test_search_through_a_coordinator_and_its_status(coordinator, small_index, small_data, tmp_path, capsys):
    address, nodes = coordinator
    queries = small_data[1][:20]
    write_vecs(tmp_path / "q.fvecs", queries)
    rc = main(["search", "--index", str(small_index.path), "--queries", str(tmp_path / "q.fvecs"), "--k", "10",
               "--nprobe", "8", "--coordinator", address, "--out", str(tmp_path / "r.npz")])
    assert rc == 0, capsys.readouterr().err
    want = LocalSearcher(small_index, ScanParams(m=small_index.m, k=10), backend="reference").search(queries, 8)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npz")["ids"], want.ids)
    capsys.readouterr()
    assert main(["status", ",".join([address, *nodes])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{address}  coordinator  3 memory nodes  requests 1 queries 20")
    assert "search ms p50=" in lines[0]
    assert sorted(line.split()[3] for line in lines[1:]) == ["0/3", "1/3", "2/3"]
    assert all("scan ms p50=" in line for line in lines[1:])


@pytest.mark.parametrize("args, message", [
    (["--llm-node", "127.0.0.1:1"], "cannot connect to 127.0.0.1:1"),
    (["--llm-node", "nohost"], "bad address 'nohost'"),
    (["--llm-node", "127.0.0.1:1,127.0.0.1:1"], "distinct LLM node addresses"),
    (["--llm-node", "127.0.0.1:1,127.0.0.1:2"], "no LLM node reachable"),
    (["--llm-node", "127.0.0.1:1", "--knn", "x"], "give each datastore together with the memory nodes"),
])
def test_serve_api_refuses_bad_settings(tokenized_gpt2, capsys, args, message):
    assert main(["serve", "api", "--model", str(tokenized_gpt2), "--port", "0", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
