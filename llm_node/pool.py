"""Several LLM nodes serving one model behind the interface of ``LLMClient``, with failover.

Nodes are ``host.net.replicas`` replicas: health-probed, ejected when they fail, time out or drain,
re-admitted when they answer again (logged once each way).  ``info``/``score`` fail over to another node;
``generate`` fails over until its first item arrives (afterwards an error ends the stream: tokens already
yielded cannot be taken back), and the ejection of its node ends its wait at once (a hung node: the probe's
timeout, not the pool's); ``mix`` goes to the node that runs its step-mode request.  Every node must
report the same model (architecture, vocab_size, hidden_size) as the first one that answered.
"""
from __future__ import annotations

import asyncio
import itertools
import types
from typing import AsyncIterator

import numpy as np

from host.net.client import RpcClient
from host.net.frames import E_DEADLINE, E_UNAVAILABLE, RemoteError, RpcError, parse_address
from host.net.replicas import NOT_REPLICA_FAULTS, Prober, Replica, ReplicaSet
from llm_node.errors import RequestError
from llm_node.server import T_GENERATE, T_INFO, T_MIX, T_SCORE

MODEL_KEYS = ("architecture", "vocab_size", "hidden_size")


class LLMPool:
    """``LLMClient``'s methods over the LLM nodes at ``addresses`` ('host:port', at least one)."""

    def __init__(self, addresses: list[str], *, timeout: float = 60.0, probe_interval_s: float = 0.25,
                 probe_timeout_s: float = 0.5):
        if not addresses or len(set(addresses)) != len(addresses):
            raise RequestError(f"give one or more distinct LLM node addresses, not {addresses!r}")
        for a in addresses:
            parse_address(a)
        self.timeout, self.model = timeout, None
        self.nodes = ReplicaSet("LLM nodes", [Replica(a, "LLM node") for a in addresses])
        self.rpc = types.SimpleNamespace(address="|".join(addresses))   # what error messages name
        self._probe = (probe_interval_s, probe_timeout_s)
        self._prober: Prober | None = None
        self._steps: dict[int, tuple[Replica, int]] = {}
        self._ids = itertools.count(1)

    @classmethod
    async def connect(cls, addresses: list[str] | str, **kw) -> "LLMPool":
        """Connect to every node; those unreachable stay out of service until a probe reaches them."""
        pool = cls([a.strip() for a in addresses.split(",")] if isinstance(addresses, str) else addresses, **kw)
        try:
            for r in pool.nodes.replicas:
                try:
                    await pool._open(r)
                    r.admit(first=True)
                except RpcError as e:
                    r.eject(e.message)
            if not any(r.up for r in pool.nodes.replicas):
                raise RpcError(E_UNAVAILABLE, "no LLM node reachable: " + "; ".join(
                    f"{r.address}: {r.reason}" for r in pool.nodes.replicas))
        except BaseException:
            await pool.close()
            raise
        pool._prober = Prober(pool.nodes.replicas, pool._open, *pool._probe)
        return pool

    async def _open(self, r: Replica) -> None:
        client = await RpcClient.connect(*parse_address(r.address), timeout=self.timeout)
        try:
            info = await client.call(T_INFO)
            model = tuple(info.get(k) for k in MODEL_KEYS)
            if info.get("role") != "llm-node" or model != (self.model or model):
                raise RequestError(f"{r.name} serves {dict(zip(MODEL_KEYS, model))} as a {info.get('role')!r}; "
                                   f"the pool serves {dict(zip(MODEL_KEYS, self.model or model))}")
        except BaseException:
            await client.close()
            raise
        self.model = model
        r.attach(client, info)

    async def _call(self, msg_type: int, fields: dict) -> dict:
        return (await self.nodes.call(msg_type, fields, timeout=self.timeout, deadline=None))[1]

    async def info(self) -> dict:
        return await self._call(T_INFO, {})

    async def score(self, token_ids: list[int] | np.ndarray, return_logits: bool = False) -> dict:
        return await self._call(T_SCORE, {"token_ids": np.asarray(token_ids, np.int64), "return_logits": return_logits})

    async def generate(self, prompt_ids: list[int] | np.ndarray | None, **params) -> AsyncIterator[dict]:
        """As ``LLMClient.generate``; step-mode items carry a pool-wide ``seq`` for ``mix``.  With prompt_ids
        None, ``params`` carry the ``prompt`` text, which the node tokenizes."""
        fields, errors = dict(params), []
        if prompt_ids is not None:
            fields["prompt_ids"] = np.asarray(prompt_ids, np.int64)
        for r in self.nodes.order():
            started, seqs = False, {}
            r.inflight += 1
            try:
                async for item in _until_ejected(r, r.client.stream(T_GENERATE, fields)):
                    started = True
                    if "seq" in item:                # node-local ids -> pool-wide ids
                        node_seq = item["seq"]
                        item["seq"] = seqs.setdefault(node_seq, next(self._ids))
                        self._steps[item["seq"]] = (r, node_seq)
                    yield item
                return
            except RpcError as e:
                if started or e.code == E_DEADLINE or (isinstance(e, RemoteError) and e.code in NOT_REPLICA_FAULTS):
                    raise
                r.eject(e.message)
                errors.append(f"{r.name}: {e.message}")
            finally:
                r.inflight -= 1
                for pool_seq in seqs.values():
                    self._steps.pop(pool_seq, None)
        raise RpcError(E_UNAVAILABLE, "LLM nodes: " + ("; ".join(errors) or "none in service"))

    async def mix(self, seq: int, step: int, tokens: np.ndarray, probs: np.ndarray, lam: float) -> None:
        if seq not in self._steps:
            raise RequestError(f"no step-mode request {seq!r} is running in this pool")
        r, node_seq = self._steps[seq]
        await r.client.call(T_MIX, {"seq": int(node_seq), "step": int(step), "tokens": np.asarray(tokens, np.int64),
                                    "probs": np.asarray(probs, np.float32), "lam": float(lam)})

    async def close(self) -> None:
        if self._prober is not None:
            await self._prober.close()
        for r in self.nodes.replicas:
            if r.client is not None:
                await r.client.close()


async def _until_ejected(r: Replica, stream: AsyncIterator[dict]) -> AsyncIterator[dict]:
    """The items of ``stream``, ended with E_UNAVAILABLE the moment ``r`` is ejected (a probe found it hung).
    However it ends (ejection, the consumer's cancellation or close), the pending read is cancelled before the
    stream is closed, so the stream's own clean-up (T_CANCEL to the node) runs."""
    step = None
    try:
        with r.watch() as ejected:
            while True:
                step = asyncio.ensure_future(anext(stream))
                await asyncio.wait({step, ejected}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    raise r.ejected_error()
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                step = None
                yield item
    finally:
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step})
        await stream.aclose()
