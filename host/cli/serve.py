"""`anole serve memory-node|coordinator`: the retrieval servers (docs/protocol.md)."""
from __future__ import annotations

from host.cli.common import group
from host.serve.coordinator import CoordinatorConfig
from host.serve.coordinator_server import run_coordinator
from host.net.lifecycle import check_drain_timeout
from host.serve.memory_node import MemoryNodeConfig, run_memory_node
from host.serve.topology import parse_topology
from host.spec.errors import InputError


def register(sub, groups):
    serve = group(sub, groups, "serve", "run a server: memory-node, coordinator")
    p = serve.add_parser("memory-node", help="serve one shard of an index to coordinators",
                         description="Serve shard --shard of the index directory --index over TCP: scans batches "
                                     "of (queries, probed lists) with the chosen backend and returns its top-K.")
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("--shard", type=int, required=True, help="which shard to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7070, help="port (default 7070, 0 = any free port)")
    p.add_argument("--backend", default="cpu", help="reference | cpu | verilator | pynq | xrt (default cpu)")
    p.add_argument("--lut-bits", type=int, default=16, help="table entry width, 8..16 (default 16)")
    p.add_argument("--k", type=int, default=10, help="largest k served, 1..100 (default 10)")
    p.add_argument("--threads", type=int, default=0, help="backend threads (default: the backend's choice)")
    p.add_argument("--max-nq", type=int, default=4096, help="queries per request (default 4096)")
    p.add_argument("--backend-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="backend option, repeatable (e.g. device=csim, bitstream=anole.bit, xclbin=anole.xclbin)")
    _server_args(p)
    p.set_defaults(func=memory_node)

    p = serve.add_parser("coordinator", help="serve search to clients through memory nodes",
                         description="Coarse search over the centroids of --index, fan-out to every memory node, "
                                     "merge by (dist, id); batches concurrent client requests.")
    p.add_argument("--index", required=True, help="index directory (centroids and manifest are read)")
    p.add_argument("--memory-nodes", required=True,
                   help="topology: 0=H:P|H:P,1=H:P|H:P (replicas per shard), a YAML file (docs/operations.md), "
                        "or H:P,H:P (one node per shard)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7000, help="port (default 7000, 0 = any free port)")
    p.add_argument("--max-batch", type=int, default=256, help="queries per fan-out (default 256)")
    p.add_argument("--max-wait-ms", type=float, default=0.0,
                   help="extra wait for more requests before a fan-out, in ms (default 0: batch what queued up)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a node (default 30)")
    p.add_argument("--deadline", type=float, default=None,
                   help="default deadline in seconds of a request that brings none (default: none)")
    p.add_argument("--probe-interval", type=float, default=0.25, help="seconds between health probes (default 0.25)")
    p.add_argument("--probe-timeout", type=float, default=0.5,
                   help="a replica silent this long to a probe is ejected (default 0.5)")
    p.add_argument("--max-queued", type=int, default=1 << 20,
                   help="queries waiting at most; more get a BUSY error (default 1048576)")
    p.add_argument("--max-inflight", type=int, default=64, help="requests in flight per client connection (default 64)")
    _server_args(p)
    p.set_defaults(func=coordinator)


def _server_args(p) -> None:
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="on SIGTERM/SIGINT, finish requests in flight for at most this many seconds (default 30)")
    p.add_argument("--max-connections", type=int, default=256, help="open connections at most (default 256)")
    p.add_argument("--idle-timeout", type=float, default=600.0,
                   help="close a connection silent this many seconds (default 600)")
    p.add_argument("--secret-file", default=None,
                   help="file holding a shared secret clients must prove (default: $ANOLE_SECRET, else none)")


def _secret(args) -> str | None:
    if args.secret_file is None:
        return None
    try:
        secret = open(args.secret_file).read().strip()
    except OSError as e:
        raise InputError(f"cannot read --secret-file: {e}") from None
    if not secret:
        raise InputError(f"--secret-file {args.secret_file} is empty")
    return secret


def _ready(what: str):
    def on_ready(host, port):
        print(f"{what} listening on {host}:{port}", flush=True)  # scripts and tests read this line
    return on_ready


def parse_options(items: list[str]) -> dict:
    """["device=csim", "lanes=4"] -> {"device": "csim", "lanes": 4} (integers converted)."""

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--backend-opt expects KEY=VALUE, not {item!r}")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return out


def memory_node(args) -> int:
    cfg = MemoryNodeConfig(backend=args.backend, threads=args.threads, max_nq=args.max_nq,
                           backend_options=parse_options(args.backend_opt), drain_timeout_s=args.drain_timeout,
                           max_connections=args.max_connections, idle_timeout_s=args.idle_timeout,
                           secret=_secret(args))
    run_memory_node(args.index, args.shard, args.host, args.port, lut_bits=args.lut_bits, k=args.k, config=cfg,
                    on_ready=_ready(f"memory node (shard {args.shard})"))
    return 0


def coordinator(args) -> int:
    secret = _secret(args)
    cfg = CoordinatorConfig(max_batch=args.max_batch, max_wait_s=args.max_wait_ms / 1e3, timeout_s=args.timeout,
                            deadline_s=args.deadline, probe_interval_s=args.probe_interval,
                            probe_timeout_s=args.probe_timeout, max_queued=args.max_queued, secret=secret)
    topology = parse_topology(args.memory_nodes)
    check_drain_timeout(args.drain_timeout)
    if args.max_connections < 1 or args.max_inflight < 1 or not args.idle_timeout > 0:
        raise InputError("--max-connections and --max-inflight must be >= 1 and --idle-timeout > 0")
    options = {"max_connections": args.max_connections, "idle_timeout": args.idle_timeout,
               "max_inflight": args.max_inflight, "secret": secret}
    run_coordinator(args.index, topology, args.host, args.port, cfg, on_ready=_ready("coordinator"),
                    drain_timeout=args.drain_timeout, server_options=options)
    return 0
