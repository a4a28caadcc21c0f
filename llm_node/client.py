"""Client of an LLM node (the coordinator's side): streamed generation, scoring, info over host.net."""
from __future__ import annotations

from typing import AsyncIterator

import numpy as np

from host.net.client import RpcClient
from llm_node.server import T_GENERATE, T_INFO, T_MIX, T_SCORE


class LLMClient:
    """One connection to an LLM node; concurrent requests are multiplexed on it.

        client = await LLMClient.connect("127.0.0.1", 7100)
        async for item in client.generate([1, 2, 3], max_tokens=16, temperature=0.0):
            ...   # {token, index, t[, hidden]} per token, then the summary {finish_reason, token_ids, ...}
    """

    def __init__(self, rpc: RpcClient):
        self.rpc = rpc

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float | None = 60.0) -> "LLMClient":
        return cls(await RpcClient.connect(host, port, timeout=timeout))

    async def info(self) -> dict:
        return await self.rpc.call(T_INFO)

    async def generate(self, prompt_ids: list[int] | np.ndarray, **params) -> AsyncIterator[dict]:
        """params: max_tokens, temperature, top_k, top_p, seed, stop_token_ids, ignore_eos, return_hidden,
        step_mode (items {step, seq, hidden} before each token, each answered with ``mix``)."""
        fields = {"prompt_ids": np.asarray(prompt_ids, np.int64), **params}
        async for item in self.rpc.stream(T_GENERATE, fields):
            yield item

    async def mix(self, seq: int, step: int, tokens: np.ndarray, probs: np.ndarray, lam: float) -> None:
        """Answer step ``step`` of the step-mode request ``seq`` (generate(..., step_mode=True)) with the sparse
        distribution probs float32[k] over tokens int64[k], mixed in with weight ``lam``."""
        await self.rpc.call(T_MIX, {"seq": int(seq), "step": int(step), "tokens": np.asarray(tokens, np.int64),
                                    "probs": np.asarray(probs, np.float32), "lam": float(lam)})

    async def score(self, token_ids: list[int] | np.ndarray, return_logits: bool = False) -> dict:
        """{logprobs float32[n-1], hidden float32[n, H][, logits float32[n, V]]}."""
        return await self.rpc.call(T_SCORE, {"token_ids": np.asarray(token_ids, np.int64),
                                             "return_logits": return_logits})

    async def close(self) -> None:
        await self.rpc.close()
