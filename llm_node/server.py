"""The LLM node server: the engine runs in its own thread; requests and token streams go over host.net.

Messages (field maps of host.net.codec; docs/protocol.md):

  T_INFO 16      {} -> {role: "llm-node", architecture, vocab_size, hidden_size, max_model_len,
                        eos_token_ids: int64[n], block_size, num_kv_blocks, free_kv_blocks, running, waiting,
                        requests, tokens, aborted, errors[, ttft_p50_ms, ttft_p90_ms, ttft_p99_ms, tbt_p50_ms, ...]}
  T_GENERATE 32  streamed. {prompt_ids: int64[n] | prompt: str, max_tokens, temperature, top_k, top_p, seed,
                  stop_token_ids: int64[m], ignore_eos, return_hidden, request_id: str (logged)}
                  -> one item per token {token, index, t (s since arrival)[, hidden: float32[H]]}, then
                  {finish_reason, token_ids: int64[k], num_prompt_tokens, num_cached_tokens, ttft, ttlt,
                  tbt: float64[k-1][, text]}, then END
  T_MIX 34       {seq, step, tokens: int64[k], probs: float32[k], lam} -> {}: the client's distribution for
                  step ``step`` of the step-mode request ``seq`` (llm_node/step_mix.py; docs/ralm.md). A
                  T_GENERATE with step_mode=true streams {step, seq, hidden: float32[H], group,
                  group_size} before each token (group: the engine step, group_size: the step-mode
                  requests in it) and waits (up to 30 s) for the T_MIX of that step before sampling it.
  T_SCORE 33     {token_ids: int64[n], return_logits?} -> {logprobs: float32[n-1] (log p of each next token),
                  hidden: float32[n, H][, logits: float32[n, V]]}

A bad request (unknown field, bad ids, too long, bad sampling parameters) gets an E_BAD_REQUEST error frame
and nothing else changes. A stream whose client goes away is aborted and its KV blocks are freed.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np
import torch

from host.net.latency import LatencyWindow
from host.net.lifecycle import bind, serve_node
from host.net.server import RpcNode, RpcServer
from llm_node.engine.llm_engine import LLMEngine
from llm_node.engine.sequence import SamplingParams, Sequence
from llm_node.errors import RequestError
from llm_node.step_mix import StepGroup, StepMixer
from llm_node.tokenizer import Tokenizer

log = logging.getLogger(__name__)

T_INFO, T_GENERATE, T_SCORE, T_MIX = 16, 32, 33, 34
SAMPLING_FIELDS = {"max_tokens": int, "temperature": float, "top_k": int, "top_p": float, "seed": int,
                   "ignore_eos": bool, "return_hidden": bool}


def parse_generate(fields: dict, tokenizer: Tokenizer | None) -> tuple[list[int], SamplingParams]:
    """A T_GENERATE field map -> (prompt ids, SamplingParams); RequestError names the bad field."""
    unknown = set(fields) - set(SAMPLING_FIELDS) - {"prompt_ids", "prompt", "stop_token_ids", "step_mode", "request_id"}
    if unknown:
        raise RequestError(f"unknown field(s) {sorted(unknown)} in a generate request")
    if not isinstance(fields.get("request_id", ""), str):
        raise RequestError(f"request_id must be a str, not {fields['request_id']!r}")
    if ("prompt" in fields) == ("prompt_ids" in fields):
        raise RequestError("give exactly one of prompt_ids and prompt")
    if "prompt" in fields:
        if not isinstance(fields["prompt"], str) or tokenizer is None:
            raise RequestError("prompt must be a str and the model must have a tokenizer; else send prompt_ids")
        ids = tokenizer.encode(fields["prompt"])
    else:
        ids = _int_list(fields["prompt_ids"], "prompt_ids")
    kw = {}
    for name, kind in SAMPLING_FIELDS.items():
        if fields.get(name) is not None:
            value = fields[name]
            ok = isinstance(value, bool) if kind is bool else (
                isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool))
            if not ok:
                raise RequestError(f"{name} must be {kind.__name__}, not {value!r}")
            kw[name] = kind(value)
    if fields.get("stop_token_ids") is not None:
        kw["stop_token_ids"] = _int_list(fields["stop_token_ids"], "stop_token_ids")
    return ids, SamplingParams(**kw)


def _int_list(value, name: str) -> list[int]:
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iu":
        return value.tolist()
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    raise RequestError(f"{name} must be a 1-d integer array or a list of ints")


class EngineWorker:
    """Owns the engine in one thread: runs submitted calls between steps and steps while work remains."""

    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self._calls: queue.Queue = queue.Queue()
        self._listeners: dict[int, tuple[Sequence, callable]] = {}
        self._closed = False
        self.stats = {"requests": 0, "tokens": 0, "aborted": 0, "errors": 0}
        self.ttft, self.tbt = LatencyWindow(), LatencyWindow()
        self._thread = threading.Thread(target=self._loop, name="llm-engine", daemon=True)
        self._thread.start()

    def call(self, fn) -> Future:
        """Run fn(engine) in the engine thread; the future holds its result or exception."""
        fut: Future = Future()
        self._calls.put((fn, fut))
        return fut

    def add(self, ids: list[int], params: SamplingParams, listener) -> Future:
        """Queue a request; listener(event: dict) is called in the engine thread per token and at the end."""
        def add(engine):
            seq = engine.add_request(ids, params)
            self.stats["requests"] += 1
            self._listeners[seq.seq_id] = (seq, listener)
            return seq.seq_id
        return self.call(add)

    def abort(self, seq_id: int) -> Future:
        def abort(engine):
            if self._listeners.pop(seq_id, None) is not None:
                engine.abort(seq_id)
                self.stats["aborted"] += 1
        return self.call(abort)

    def close(self) -> None:
        self._closed = True
        self._calls.put((None, None))
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._closed:
            try:
                fn, fut = self._calls.get(timeout=None if not self.engine.has_unfinished() else 0)
            except queue.Empty:
                fn = None
            if fn is not None and fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(self.engine))
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(e)
            if self._calls.empty() and self.engine.has_unfinished():
                self._step()

    def _step(self) -> None:
        try:
            events = self.engine.step()
        except Exception as e:  # noqa: BLE001 - fail the running requests, keep serving
            log.exception("engine step failed")
            self.stats["errors"] += 1
            for seq, _ in list(self._listeners.values()):
                seq.error = f"engine failure: {type(e).__name__}: {e}"
                self.engine.abort(seq.seq_id)
                seq.finish_reason = "error"
            events = []
        self.stats["tokens"] += len(events)
        for seq, token in events:
            entry = self._listeners.get(seq.seq_id)
            if entry:
                item = {"token": token, "index": len(seq.completion_ids) - 1,
                        "t": seq.token_times[-1] - seq.arrival_time}
                if seq.params.return_hidden:
                    item["hidden"] = seq.hidden_states[-1].numpy()
                entry[1](item)
        for seq_id, (seq, listener) in list(self._listeners.items()):
            if seq.finished:
                del self._listeners[seq_id]
                self._record(seq)
                listener(_summary(seq))

    def _record(self, seq: Sequence) -> None:
        t = seq.token_times
        if t:
            self.ttft.add(t[0] - seq.arrival_time)
        for a, b in zip(t, t[1:]):
            self.tbt.add(b - a)


def _log_request(request_id, seq_id: int, prompt_tokens: int, summary: dict) -> None:
    """One INFO line per finished request (with the API's request id when it sent one), the TBT at DEBUG."""
    ttft, ttlt = (summary[k] if summary[k] is not None else float("nan") for k in ("ttft", "ttlt"))
    log.info("request %s seq %d: %d prompt tokens, %d generated, %s, ttft %.1f ms, total %.1f ms", request_id or "-",
             seq_id, prompt_tokens, len(summary["token_ids"]), summary["finish_reason"], ttft * 1e3, ttlt * 1e3)
    if log.isEnabledFor(logging.DEBUG) and len(summary["tbt"]):
        log.debug("request %s seq %d: tbt mean %.2f ms, max %.2f ms", request_id or "-", seq_id,
                  summary["tbt"].mean() * 1e3, summary["tbt"].max() * 1e3)


def _summary(seq: Sequence) -> dict:
    t = seq.timings()
    out = {"finish_reason": seq.finish_reason, "token_ids": np.array(seq.completion_ids, np.int64),
           "num_prompt_tokens": seq.num_prompt_tokens, "num_cached_tokens": seq.num_cached_tokens,
           "ttft": t["ttft"], "ttlt": t["ttlt"], "tbt": np.array(t["tbt"], np.float64)}
    if seq.error:
        out["error"] = seq.error
    return out


class LLMNode(RpcNode):
    """Serves an engine over host.net (T_INFO, T_GENERATE, T_SCORE)."""

    def __init__(self, engine: LLMEngine, max_frame: int = 64 << 20):
        self.engine = engine
        path = engine.config.model / "tokenizer.json"
        self.tokenizer = Tokenizer(engine.config.model) if path.is_file() else None
        self._max_token_chars = self.tokenizer.max_token_chars if self.tokenizer is not None else 0
        self.worker = EngineWorker(engine)
        self.server = RpcServer(max_frame=max_frame, read_timeout=30.0)
        self.server.register(T_INFO, self._info)
        self.server.register(T_GENERATE, self._generate, stream=True)
        self.server.register(T_SCORE, self._score)
        self.server.register(T_MIX, self._mix)
        self._mixers: dict[int, StepMixer] = {}
        self._step_group = StepGroup()           # used by the engine thread only

    async def close(self) -> None:
        await super().close()
        self.worker.close()

    async def _info(self, fields: dict) -> dict:
        def info(e: LLMEngine):
            mc = e.model_config
            return {"role": "llm-node", "architecture": mc.architecture, "vocab_size": mc.vocab_size,
                    "hidden_size": mc.hidden_size, "max_model_len": e.max_model_len,
                    "eos_token_ids": np.array(mc.eos_token_ids, np.int64), "block_size": e.config.block_size,
                    "num_kv_blocks": e.config.num_kv_blocks, "free_kv_blocks": e.block_manager.num_free_blocks,
                    "running": len(e.scheduler.running), "waiting": len(e.scheduler.waiting),
                    "has_tokenizer": self.tokenizer is not None, **self.worker.stats,
                    **self.worker.ttft.percentiles("ttft"), **self.worker.tbt.percentiles("tbt")}
        return await asyncio.wrap_future(self.worker.call(info))

    async def _tokenize(self, fields: dict) -> dict:
        """A text prompt tokenized in a worker thread (a megabyte prompt must not stall the other clients); one
        with more characters than the context times the longest token cannot fit and is refused untokenized."""
        text = fields.get("prompt")
        if not isinstance(text, str) or self.tokenizer is None or "prompt_ids" in fields:
            return fields
        limit = self.engine.max_model_len
        if len(text) > limit * self._max_token_chars:
            raise RequestError(f"a prompt of {len(text)} characters cannot fit the context of {limit} tokens")
        ids = await asyncio.to_thread(self.tokenizer.encode, text)
        return {k: v for k, v in fields.items() if k != "prompt"} | {"prompt_ids": ids}

    async def _generate(self, fields: dict):
        ids, params = parse_generate(await self._tokenize(fields), self.tokenizer)
        room = self.engine.max_model_len - len(ids)
        if 0 < room < params.max_tokens:               # a prompt too long is the engine's error
            raise RequestError(f"max_tokens={params.max_tokens} does not fit: the prompt has {len(ids)} tokens and "
                               f"max_model_len is {self.engine.max_model_len}; ask for at most {room}")
        loop, items = asyncio.get_running_loop(), asyncio.Queue()
        emit = lambda item: loop.call_soon_threadsafe(items.put_nowait, item)  # noqa: E731
        mixer = None
        if not isinstance(fields.get("step_mode", False), bool):
            raise RequestError(f"step_mode must be a bool, not {fields['step_mode']!r}")
        if fields.get("step_mode"):
            mixer = params.logits_processor = StepMixer(emit, self.engine.model_config.vocab_size,
                                                        group=self._step_group)
            self._mixers[mixer.key] = mixer
        try:
            seq_id = await asyncio.wrap_future(self.worker.add(ids, params, emit))
        except BaseException:
            self._mixers.pop(getattr(mixer, "key", None), None)
            raise
        done = False
        try:
            while True:
                item = await items.get()
                if "finish_reason" in item:
                    done = True
                    _log_request(fields.get("request_id"), seq_id, len(ids), item)
                    if self.tokenizer is not None:
                        item["text"] = self.tokenizer.decode(item["token_ids"].tolist())
                    yield item
                    return
                yield item
        finally:
            if mixer is not None:
                self._mixers.pop(mixer.key, None)
                mixer.fail("the client of this step-mode request went away")
            if not done:                         # cancelled, or the client went away (a send failed)
                log.info("request %d ended before it finished; aborting it", seq_id)
                self.worker.abort(seq_id)

    async def _mix(self, fields: dict) -> dict:
        unknown = set(fields) - {"seq", "step", "tokens", "probs", "lam"}
        if unknown:
            raise RequestError(f"unknown field(s) {sorted(unknown)} in a mix request")
        mixer = self._mixers.get(fields.get("seq"))
        if mixer is None:
            raise RequestError(f"no step-mode request {fields.get('seq')!r} is running")
        mixer.feed(fields.get("step"), fields.get("tokens"), fields.get("probs"), fields.get("lam", 0.0))
        return {}

    async def _score(self, fields: dict) -> dict:
        unknown = set(fields) - {"token_ids", "return_logits"}
        if unknown:
            raise RequestError(f"unknown field(s) {sorted(unknown)} in a score request")
        ids = _int_list(fields.get("token_ids"), "token_ids")
        logits, hidden = await asyncio.wrap_future(self.worker.call(lambda e: e.score(ids)))
        logits = logits.cpu()
        logp = torch.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
        out = {"logprobs": logp.numpy(), "hidden": hidden.float().cpu().numpy()}
        if fields.get("return_logits"):
            out["logits"] = logits.numpy()
        return out


def warmup(engine: LLMEngine, timeout_s: float = 600.0) -> None:
    """A prefill and a decode step before listening (through the serving interface, any scheduler): the first
    client does not pay for lazy initialisation."""
    engine.add_request([0], SamplingParams(temperature=0.0, max_tokens=2, ignore_eos=True))
    deadline = time.monotonic() + timeout_s
    while engine.has_unfinished() and time.monotonic() < deadline:
        engine.step()


def run_llm_node(engine: LLMEngine, host: str, port: int, on_ready=None, drain_timeout: float = 30.0) -> None:
    """Warm up, then serve until SIGTERM/SIGINT, then drain (at most ``drain_timeout`` s); on_ready(host, port)
    is called once listening.  A port in use fails with a one-line InputError (before the warm-up)."""
    sock = bind(host, port)
    warmup(engine)
    try:
        asyncio.run(serve_node(LLMNode(engine), host, port, on_ready, drain_timeout=drain_timeout, sock=sock))
    finally:
        sock.close()
