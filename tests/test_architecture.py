"""The import graph follows the one-way chain drawn in README.md ("Architecture"), has no cycles, and
first-party imports sit at module level unless they defer a heavy optional dependency (marked `# lazy:`)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("host", "hw", "sim", "llm_node", "hls", "scripts")
CHAIN = (
    "host.spec",      # ScanParams, errors, register map, memory layout, the integer reference model
    "host.net",       # framing, codec, RPC server and client
    "host.index",     # datasets, index build, index directories
    "hw",             # Amaranth components; hw.flow: Verilog, reports, .xo packaging
    "sim",            # simulator builds and cocotb benches
    "host.board",     # board drivers: XRT, PYNQ, HLS C simulation, RTL simulation
    "host.backends",  # scan backends and the local searcher
    "host.serve",     # memory node, coordinator
    "llm_node",       # the LLM engine, schedulers, its server
    "host.ralm",      # RALM flows, datastores, evaluation, the demo
    "host.rago",      # RAGO schema, performance model, optimizer
    "host.api",       # the OpenAI-compatible HTTP API, metrics, health
    "host.cluster",   # servers as Ray actors placed by resources, the distributed index build
    "host.cli",       # the `anole` command
    "hls",            # Vitis HLS twin helpers
    "scripts",        # demos and benchmarks
)
"""Lowest first: a module may import its own layer and the layers before it, never one after it."""
def layer(module: str) -> int | None:
    """Index in CHAIN of the longest prefix of `module`, None for a third-party module."""
    best = None
    for i, name in enumerate(CHAIN):
        if module == name or module.startswith(name + "."):
            if best is None or len(name) > len(CHAIN[best]):
                best = i
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(path: Path):
    """(imported module, line, at module level?, lazy comment?) for every first-party import of `path`."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    top = set()
    for node in tree.body:   # module level, including `if TYPE_CHECKING:` and `try:` blocks there
        top |= {id(n) for n in ast.walk(node)} if isinstance(node, (ast.If, ast.Try)) else {id(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in names if _exists(n)] or [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name, node.lineno, id(node) in top, "# lazy:" in lines[node.lineno - 1]


def _exists(module: str) -> bool:
    base = ROOT.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def sources():
    for pkg in PACKAGES:
        yield from sorted(p for p in (ROOT / pkg).rglob("*.py") if "build" not in p.parts)


def test_every_import_follows_the_chain():
    against = []
    for path in sources():
        here = module_name(path)
        if here == "host":
            continue
        for name, line, _, _ in first_party_imports(path):
            src, dst = layer(here), layer(name)
            assert src is not None, f"{here} is in no layer of CHAIN"
            if dst is not None and dst > src:
                against.append(f"{path.relative_to(ROOT)}:{line}: {CHAIN[src]} imports {name} ({CHAIN[dst]})")
    assert not against, "imports against the chain:\n" + "\n".join(against)


def test_llm_node_imports_only_host_net_and_spec():
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sources() if module_name(p).startswith("llm_node")
           for name, line, _, _ in first_party_imports(p)
           if name.startswith("host") and layer(name) not in (CHAIN.index("host.spec"), CHAIN.index("host.net"))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for path in sources():
        here = module_name(path)
        graph.setdefault(here, set())
        for name, _, _, _ in first_party_imports(path):
            target = name if name in _modules() else name.rsplit(".", 1)[0]
            if target != here and target in _modules():
                graph[here].add(target)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_first_party_imports_are_at_module_level():
    inner = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sources()
             for name, line, top, lazy in first_party_imports(p) if not top and not lazy]
    assert not inner, ("first-party imports inside functions (mark a deferred heavy dependency with "
                       "'# lazy: <why>'):\n" + "\n".join(inner))


def _modules() -> set[str]:
    if not hasattr(_modules, "cache"):
        _modules.cache = {module_name(p) for p in sources()}
    return _modules.cache


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("module,expected", [("host.spec.errors", "host.spec"), ("hw.flow.verilog", "hw"),
                                             ("numpy", None), ("host.cli", "host.cli")])
def test_layer_of_a_module(module, expected):
    assert (CHAIN[layer(module)] if layer(module) is not None else None) == expected
