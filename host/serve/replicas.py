"""Memory node replicas: a replica named by its shard, the identity check of a node's INFO answer, and the
grouping of connected replicas into one ``host.net.replicas.ReplicaSet`` per shard."""
from __future__ import annotations

from host.net.frames import E_UNAVAILABLE, RpcError
from host.net.replicas import Replica, ReplicaSet
from host.spec.errors import InputError


class MemoryReplica(Replica):
    """A memory node address; ``shard`` is the topology's, or learnt from its INFO (None until then)."""

    def __init__(self, address: str, shard: int | None):
        super().__init__(address, "memory node")
        self.shard = shard

    @property
    def name(self) -> str:
        return f"memory node {self.address} (shard {'?' if self.shard is None else self.shard})"

    def attach(self, client, info: dict) -> None:
        super().attach(client, info)
        self.shard = info["shard"]


def identity_problem(info: dict, shard: int | None, fingerprint: str, where, max_batch: int, params) -> str | None:
    """Why a node's INFO answer disqualifies it as a replica of ``shard`` (None: not known yet) of the index
    ``fingerprint`` for a coordinator sending ``max_batch`` queries with ``params`` (None: any); None if fine."""
    if info.get("role") != "memory-node":
        return f"is a {info.get('role')!r}, not a memory node"
    if info.get("fingerprint") != fingerprint:
        return (f"serves index {info.get('fingerprint')}, but {where} is {fingerprint} "
                "(a different index or a rebuilt one)")
    if shard is not None and info["shard"] != shard:
        return f"serves shard {info['shard']}, but it is listed (or served before) as shard {shard}"
    if info["max_nq"] < max_batch:
        return f"takes at most {info['max_nq']} queries per request; lower the coordinator's max_batch to that"
    theirs, p = info["params"], params
    if p is not None and (p.lut_bits != theirs["lut_bits"] or p.m != theirs["m"] or p.k > theirs["k"]):
        return f"runs {theirs}; the coordinator needs m={p.m}, lut_bits={p.lut_bits}, k >= {p.k}"
    return None


def replica_sets(replicas: list[MemoryReplica], declared: bool, nshards: int, where) -> dict[int, ReplicaSet]:
    """Group connected replicas by shard.  InputError: a shard of the index nobody serves, or (``declared``
    False: the old one-node-per-shard list) two nodes serving one shard; RpcError: a shard none reaches."""
    by_shard: dict[int, list[MemoryReplica]] = {}
    for r in replicas:
        by_shard.setdefault(r.shard, []).append(r)
    twice = [rs for rs in by_shard.values() if len(rs) > 1]
    if not declared and twice:
        raise InputError(f"{twice[0][0].address} and {twice[0][1].address} both serve shard {twice[0][0].shard}; "
                         "give replicas as SHARD=H:P|H:P")
    missing = sorted(set(range(nshards)) - set(by_shard))
    if missing:
        raise InputError(f"no memory node serves shard(s) {missing} of {where}; results would be incomplete")
    for s, rs in by_shard.items():
        if not any(r.up for r in rs):
            down = "; ".join(f"{r.address}: {r.reason}" for r in rs)
            raise RpcError(E_UNAVAILABLE, f"shard {s}: no replica reachable ({down})")
    return {s: ReplicaSet(f"shard {s}", rs) for s, rs in sorted(by_shard.items())}
