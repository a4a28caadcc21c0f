"""Replicas of a shard: which are in service, failover of a call, health probes, ejection, re-admission.

A replica is ejected when a call to it fails or times out, its health probe (T_PING) gets no answer within
``probe_timeout_s``, or it announces that it drains (T_GOAWAY); calls waiting on it at that moment move to
another replica at once.  The probe loop reconnects ejected replicas (checking their identity again) and
re-admits them once they answer.  Both transitions are logged once.  A call goes to the in-service replica
with the fewest calls out; with none in service it fails at once with an error naming the shard.
"""
from __future__ import annotations

import asyncio
import itertools
import logging

from host.net import deadline as dl
from host.net.client import RpcClient
from host.net.frames import (E_AUTH, E_BAD_PAYLOAD, E_BAD_REQUEST, E_BUSY, E_DEADLINE, E_TOO_LARGE, E_UNAVAILABLE,
                             E_UNKNOWN_TYPE, RemoteError, RpcError)
from host.spec.errors import InputError

log = logging.getLogger(__name__)
NOT_REPLICA_FAULTS = {E_BAD_REQUEST, E_BAD_PAYLOAD, E_UNKNOWN_TYPE, E_TOO_LARGE}   # the request is wrong


class Replica:
    """One memory node address: its connection, its INFO, whether it is in service and why not."""

    def __init__(self, address: str, shard: int | None):
        self.address, self.shard = address, shard
        self.client: RpcClient | None = None
        self.info: dict | None = None
        self.up, self.reason = False, "not connected yet"
        self.inflight = 0
        self._watchers: set[asyncio.Future] = set()

    @property
    def name(self) -> str:
        return f"memory node {self.address} (shard {'?' if self.shard is None else self.shard})"

    def attach(self, client: RpcClient, info: dict) -> None:
        if self.client is not None and self.client is not client:
            asyncio.ensure_future(self.client.close())
        self.client, self.info, self.shard = client, info, info["shard"]
        client.on_goaway = lambda: self.eject("it is draining (shutting down)")

    def eject(self, reason: str) -> None:
        if self.up:
            log.warning("ejected %s: %s", self.name, reason)
        self.up, self.reason = False, reason
        for w in self._watchers:
            w.done() or w.set_result(None)
        self._watchers.clear()

    def admit(self, first: bool = False) -> None:
        if not self.up:
            log.info("%s %s", "in service:" if first else "re-admitted", self.name)
        self.up, self.reason = True, None

    @property
    def usable(self) -> bool:
        """In service with an open connection; ejects it first if the connection ended or it drains."""
        if self.up and (self.client is None or self.client.closed):
            self.eject(self.client.closed_why if self.client is not None else "not connected")
        elif self.up and self.client.draining:
            self.eject("it is draining (shutting down)")
        return self.up

    async def call(self, msg_type: int, fields: dict, timeout: float, deadline: float | None) -> dict:
        """One call that also ends (E_UNAVAILABLE) the moment this replica is ejected."""
        watcher = asyncio.get_running_loop().create_future()
        self._watchers.add(watcher)
        task = asyncio.ensure_future(self.client.call(msg_type, fields, timeout=timeout, deadline=deadline))
        self.inflight += 1
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            raise RpcError(E_UNAVAILABLE, f"ejected while the request was out ({self.reason})")
        finally:
            self.inflight -= 1
            self._watchers.discard(watcher)
            task.cancel()


class ReplicaSet:
    """The replicas of one shard."""

    def __init__(self, shard: int, replicas: list[Replica]):
        self.shard, self.replicas = shard, replicas
        self._turn = itertools.count()

    def _order(self) -> list[Replica]:
        live = [r for r in self.replicas if r.usable]
        if len(live) > 1:
            t = next(self._turn) % len(live)
            live = sorted(live[t:] + live[:t], key=lambda r: r.inflight)
        return live

    async def call(self, msg_type: int, fields: dict, *, timeout: float, deadline: float | None, parse=None):
        """Call the shard: try each replica in service until one answers; -> (replica, parse(answer))."""
        errors: list[str] = []
        last = None
        for r in self._order():
            if deadline is not None and deadline <= dl.now():
                raise RpcError(E_DEADLINE, f"shard {self.shard}: deadline passed; " + "; ".join(errors))
            try:
                answer = await r.call(msg_type, fields, timeout, deadline)
                return r, (parse(answer) if parse else answer)
            except InputError as e:                          # a malformed answer
                last = RpcError(E_UNAVAILABLE, f"{r.name}: bad answer: {e}")
                r.eject(f"bad answer: {e}")
            except RpcError as e:
                last = type(e)(e.code, e.message if e.message.startswith(r.name) else f"{r.name}: {e.message}")
                if e.code == E_DEADLINE or (isinstance(e, RemoteError) and e.code in NOT_REPLICA_FAULTS):
                    raise type(e)(e.code, f"shard {self.shard}: {last.message}") from None
                if e.code != E_BUSY:
                    r.eject(e.message)
            errors.append(last.message)
        if last is None:
            down = "; ".join(f"{r.name}: {r.reason}" for r in self.replicas)
            raise RpcError(E_UNAVAILABLE, f"shard {self.shard}: no replica in service ({down})")
        raise type(last)(last.code, f"shard {self.shard}: no replica could answer: {'; '.join(errors)}")


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


def replica_sets(replicas: list[Replica], declared: bool, nshards: int, where) -> dict[int, ReplicaSet]:
    """Group connected replicas by shard.  InputError: a shard of the index nobody serves, or (``declared``
    False: the old one-node-per-shard list) two nodes serving one shard; RpcError: a shard none reaches."""
    by_shard: dict[int, list[Replica]] = {}
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
    return {s: ReplicaSet(s, rs) for s, rs in sorted(by_shard.items())}


class Prober:
    """Probes every replica each ``interval`` s: pings those in service, reconnects the others."""

    def __init__(self, replicas: list[Replica], open_replica, interval: float, timeout: float):
        self.replicas, self.open, self.interval, self.timeout = replicas, open_replica, interval, timeout
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.gather(*(self.probe(r) for r in self.replicas))

    async def probe(self, r: Replica) -> None:
        try:
            if r.client is None or r.client.closed or (r.client.draining and not r.up):
                async with asyncio.timeout(self.timeout):
                    await self.open(r)
            elif r.client.draining:
                r.eject("it is draining (shutting down)")
                return
            await r.client.ping(self.timeout)
            r.admit()
        except (RpcError, InputError, TimeoutError) as e:
            reason = f"health probe: {e or f'no answer within {self.timeout} s'}"
            if (isinstance(e, InputError) or getattr(e, "code", None) == E_AUTH) and reason != r.reason:
                log.warning("refusing %s: %s", r.name, e)          # a wrong index, shard or secret: once
            r.eject(reason)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
