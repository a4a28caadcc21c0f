"""Replicas of one service: which are in service, failover of a call, health probes, ejection, re-admission.

A replica is ejected when a call to it fails (no answer, a lost connection, a malformed answer; an INTERNAL or
BUSY answer only moves the call to another replica) or times out, its health probe (T_PING) gets no answer within
the probe timeout, or it announces that it drains (T_GOAWAY); calls waiting on it at that moment move to
another replica at once.  The probe loop reconnects ejected replicas (through the owner's ``open``, which
checks their identity again) and re-admits them once they answer.  Both transitions are logged once.  A call
goes to the in-service replica with the fewest calls out; with none in service it fails at once with an
error naming the set (``label``: "shard 1", "LLM nodes").  Used by the coordinator (``host.serve``) and the
LLM node pool (``llm_node.pool``).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

from host.net import deadline as dl
from host.net.client import RpcClient
from host.net.frames import (E_AUTH, E_BAD_PAYLOAD, E_BAD_REQUEST, E_BUSY, E_DEADLINE, E_INTERNAL, E_TOO_LARGE,
                             E_UNAVAILABLE, E_UNKNOWN_TYPE, RemoteError, RpcError)
from host.net.timeouts import within
from host.spec.errors import InputError

log = logging.getLogger(__name__)
NOT_REPLICA_FAULTS = {E_BAD_REQUEST, E_BAD_PAYLOAD, E_UNKNOWN_TYPE, E_TOO_LARGE}   # the request is wrong


class Replica:
    """One server address: its connection, its INFO, whether it is in service and why not."""

    def __init__(self, address: str, kind: str = "node"):
        self.address, self.kind = address, kind
        self.client: RpcClient | None = None
        self.info: dict | None = None
        self.up, self.reason = False, "not connected yet"
        self.inflight = 0
        self._watchers: set[asyncio.Future] = set()

    @property
    def name(self) -> str:
        return f"{self.kind} {self.address}"

    def attach(self, client: RpcClient, info: dict) -> None:
        """Use ``client`` (connected, identity checked: ``info`` is its INFO answer) from now on."""
        if self.client is not None and self.client is not client:
            asyncio.ensure_future(self.client.close())
        self.client, self.info = client, info
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

    @contextlib.contextmanager
    def watch(self):
        """Within the block: a future that completes when this replica is ejected (at once if it is out)."""
        watcher = asyncio.get_running_loop().create_future()
        if not self.up:
            watcher.set_result(None)
        self._watchers.add(watcher)
        try:
            yield watcher
        finally:
            self._watchers.discard(watcher)

    def ejected_error(self) -> RpcError:
        return RpcError(E_UNAVAILABLE, f"ejected while the request was out ({self.reason})")

    async def call(self, msg_type: int, fields: dict, timeout: float, deadline: float | None) -> dict:
        """One call that also ends (E_UNAVAILABLE) the moment this replica is ejected."""
        task = asyncio.ensure_future(self.client.call(msg_type, fields, timeout=timeout, deadline=deadline))
        self.inflight += 1
        try:
            with self.watch() as watcher:
                await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            raise self.ejected_error()
        finally:
            self.inflight -= 1
            task.cancel()


class ReplicaSet:
    """Interchangeable replicas (of one shard, or LLM nodes of one model); ``label`` names them in errors.
    ``observer(replica, seconds, result, error)``, when set, sees every attempt (metrics)."""

    def __init__(self, label: str, replicas: list[Replica], observer=None):
        self.label, self.replicas, self.observer = label, replicas, observer
        self._turn = itertools.count()

    def order(self) -> list[Replica]:
        """The replicas in service, the one to try first first."""
        live = [r for r in self.replicas if r.usable]
        if len(live) > 1:
            t = next(self._turn) % len(live)
            live = sorted(live[t:] + live[:t], key=lambda r: r.inflight)
        return live

    async def call(self, msg_type: int, fields: dict, *, timeout: float, deadline: float | None, parse=None):
        """Try each replica in service until one answers; -> (replica, parse(answer))."""
        errors: list[str] = []
        last = None
        for r in self.order():
            if deadline is not None and deadline <= dl.now():
                raise RpcError(E_DEADLINE, f"{self.label}: deadline passed; " + "; ".join(errors))
            try:
                return r, await self._attempt(r, msg_type, fields, timeout, deadline, parse)
            except InputError as e:                          # a malformed answer
                last = RpcError(E_UNAVAILABLE, f"{r.name}: bad answer: {e}")
                r.eject(f"bad answer: {e}")
            except RpcError as e:
                last = type(e)(e.code, e.message if e.message.startswith(r.name) else f"{r.name}: {e.message}")
                if e.code == E_DEADLINE or (isinstance(e, RemoteError) and e.code in NOT_REPLICA_FAULTS):
                    raise type(e)(e.code, f"{self.label}: {last.message}") from None
                if not (isinstance(e, RemoteError) and e.code in (E_BUSY, E_INTERNAL)):   # it answered: still up
                    r.eject(e.message)
            errors.append(last.message)
        if last is None:
            down = "; ".join(f"{r.name}: {r.reason}" for r in self.replicas)
            raise RpcError(E_UNAVAILABLE, f"{self.label}: no replica in service ({down})")
        raise type(last)(last.code, f"{self.label}: no replica could answer: {'; '.join(errors)}")

    async def _attempt(self, r: Replica, msg_type: int, fields: dict, timeout: float, deadline: float | None, parse):
        t0, out, error = time.perf_counter(), None, None
        try:
            answer = await r.call(msg_type, fields, timeout, deadline)
            out = parse(answer) if parse else answer
            return out
        except Exception as e:
            error = e
            raise
        finally:
            if self.observer is not None:
                self.observer(r, time.perf_counter() - t0, out, error)


class Prober:
    """Probes every replica each ``interval`` s: pings those in service, reconnects the others."""

    def __init__(self, replicas: list[Replica], open_replica, interval: float, timeout: float):
        """``open_replica(r)``: connect, check identity, ``r.attach`` (InputError or RpcError if it cannot)."""
        self.replicas, self.open, self.interval, self.timeout = replicas, open_replica, interval, timeout
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.gather(*(self.probe(r) for r in self.replicas))

    async def probe(self, r: Replica) -> None:
        try:
            if r.client is None or r.client.closed or (r.client.draining and not r.up):
                async with within(self.timeout):
                    await self.open(r)
            elif r.client.draining:
                r.eject("it is draining (shutting down)")
                return
            await r.client.ping(self.timeout)
            r.admit()
        except (RpcError, InputError, asyncio.TimeoutError) as e:
            reason = f"health probe: {e or f'no answer within {self.timeout} s'}"
            if (isinstance(e, InputError) or getattr(e, "code", None) == E_AUTH) and reason != r.reason:
                log.warning("refusing %s: %s", r.name, e)          # a wrong index, shard or secret: once
            r.eject(reason)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
