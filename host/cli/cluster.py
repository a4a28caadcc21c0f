"""`anole cluster up|status|down`: the servers of a topology as Ray actors (docs/cluster.md)."""
from __future__ import annotations

import json

from host.cli.common import group
from host.cluster.deploy import down, status, up
from host.cluster.topology import load_topology

ADDRESS_HELP = "Ray cluster: auto (RAY_ADDRESS or the local `ray start`), HOST:PORT or ray://HOST:PORT (default auto)"


def register(sub, groups):
    g = group(sub, groups, "cluster", "run anole's servers on a Ray cluster: up, status, down")
    p = g.add_parser("up", help="start the servers of a topology as Ray actors placed by resources",
                     description="Start memory nodes (per shard and replica), LLM nodes and coordinators as "
                                 "detached Ray actors on hosts that offer their resources, hand the memory nodes' "
                                 "addresses to the coordinators, print where each listens.")
    p.add_argument("topology", help="topology YAML file (docs/cluster.md)")
    p.add_argument("--address", default="auto", help=ADDRESS_HELP)
    p.add_argument("--json", action="store_true", help="print the servers as JSON")
    p.set_defaults(func=cluster_up)
    for name, what, func in (("status", "where each server of a deployment listens, and whether it is alive",
                              cluster_status),
                             ("down", "stop every server of a deployment", cluster_down)):
        p = g.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        p.add_argument("--namespace", default="anole", help="the topology's namespace (default anole)")
        p.add_argument("--address", default="auto", help=ADDRESS_HELP)
        if name == "status":
            p.add_argument("--json", action="store_true", help="print the servers as JSON")
        p.set_defaults(func=func)


def _print(records: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(records, indent=1))
        return
    for r in records:
        state = "alive" if r.get("alive") else f"DOWN ({r.get('error', 'not running')})"
        print(f"{r['name']:<24} {r['role']:<12} {r.get('address') or '-':<22} pid {r.get('pid', '-'):<8} "
              f"starts {r.get('starts', 0)}  {state}")


def cluster_up(args) -> int:
    _print(up(load_topology(args.topology), args.address), args.json)
    return 0


def cluster_status(args) -> int:
    records = status(args.namespace, args.address)
    _print(records, args.json)
    return 0 if all(r.get("alive") for r in records) else 1


def cluster_down(args) -> int:
    names = down(args.namespace, args.address)
    print(f"stopped {len(names)} actor(s) in namespace {args.namespace!r}" + (f": {', '.join(names)}" if names else ""))
    return 0
