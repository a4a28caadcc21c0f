"""/v1/completions and /v1/chat/completions: validate, tokenize, run ``n`` choices concurrently, answer as one
JSON object or as server-sent events (``data: {chunk}`` ... ``data: [DONE]``) exactly as OpenAI streams them."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

from starlette.responses import JSONResponse, StreamingResponse

from host.api.backend import Backend
from host.api.errors import ApiError, sse_error
from host.api.protocol import ChatCompletionRequest, CompletionRequest, choice, completion_object, new_id, usage
from host.api.text import TextStream

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """One validated request: prompt ids and text, sampling, retrieval, ``n`` choices."""

    chat: bool
    ids: list[int]
    text: str
    sampling: dict
    stop: list[str]
    n: int
    kind: str
    ralm: object
    stream: bool
    include_usage: bool
    model: str
    rid: str = ""
    arrival: float = field(default_factory=time.perf_counter)


async def prepare(backend: Backend, req: CompletionRequest | ChatCompletionRequest) -> Job:
    """The request checked against the served model; ApiError (404 unknown model, 400 anything else bad)."""
    chat = isinstance(req, ChatCompletionRequest)
    name = backend.config.served_model_name
    if req.model != name:
        raise ApiError(404, f"the model {req.model!r} does not exist; this server serves {name!r}", param="model",
                       code="model_not_found")
    if req.n > backend.config.max_n:
        raise ApiError(400, f"n must be at most {backend.config.max_n}, not {req.n}", param="n")
    try:
        stop = req.stop_list()
    except ValueError as e:
        raise ApiError(400, str(e), param="stop") from None
    if chat:
        text = backend.chat.render([m.model_dump(exclude_none=True) for m in req.messages])
        ids = await backend.encode(text, "messages")
    elif isinstance(req.prompt, str):
        text, ids = req.prompt, await backend.encode(req.prompt, "prompt")
    else:
        ids = list(req.prompt)
        vocab = int(backend.info["vocab_size"])
        if any(not 0 <= t < vocab for t in ids):
            raise ApiError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        text = backend.decode(ids)
    if not ids:
        raise ApiError(400, "the prompt is empty after tokenization", param="messages" if chat else "prompt")
    limit = backend.max_model_len
    max_tokens = (req.max_completion_tokens or req.max_tokens) if chat else req.max_tokens
    if max_tokens is None:
        max_tokens = limit - len(ids) if chat else 16
    if len(ids) + max(max_tokens, 1) > limit:
        raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                            f"{len(ids) + max_tokens} tokens ({len(ids)} in the prompt, {max_tokens} for the "
                            "completion). Please reduce the prompt or max_tokens.",
                       param="messages" if chat else "prompt", code="context_length_exceeded")
    kind, ralm = backend.resolve_retrieval(req.retrieval)
    sampling = {"max_tokens": max_tokens, "temperature": float(req.temperature), "top_p": float(req.top_p)}
    if req.seed is not None:
        sampling["seed"] = req.seed
    return Job(chat, ids, text, sampling, stop, req.n, kind, ralm, req.stream,
               bool(req.stream_options and req.stream_options.include_usage), name,
               new_id("chatcmpl" if chat else "cmpl"))


async def run_choice(backend: Backend, job: Job, index: int, put) -> dict:
    """Generate choice ``index``: put((index, text delta)) as text becomes safe to show; returns its summary."""
    sampling = dict(job.sampling)
    if "seed" in sampling:
        sampling["seed"] += index
    sampling["request_id"] = job.rid if job.n == 1 else f"{job.rid}.{index}"
    text = TextStream(backend.decode, job.stop, backend.eos_ids)
    times, finish = [], None
    gen = backend.generate(job.ids, job.text, sampling, job.kind, job.ralm)
    with backend.metrics.running.track_inprogress():
        async with contextlib.aclosing(gen):
            async for item in gen:
                if isinstance(item, dict):
                    finish = item["finish_reason"]
                    break
                times.append(time.perf_counter())
                delta = text.push(item)
                if delta:
                    put((index, delta))
                if text.stopped:
                    finish = "stop"
                    break
    tail = text.flush()
    if tail:
        put((index, tail))
    backend.metrics.observe_stream(times, job.arrival)
    return {"index": index, "text": text.text, "finish_reason": "length" if finish == "length" else "stop",
            "tokens": len(times)}


async def respond(backend: Backend, job: Job, log_fields: dict):
    """The JSON response, or the SSE stream (errors before the first event still get their HTTP status)."""
    if not job.stream:
        tasks = [asyncio.ensure_future(run_choice(backend, job, i, lambda _: None)) for i in range(job.n)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:                        # a failed choice cancels its siblings
            for t in tasks:
                t.cancel()
            raise
        completion = sum(r["tokens"] for r in results)
        _account(backend, job, log_fields, completion)
        choices = [choice(r["index"], r["text"], r["finish_reason"], job.chat) for r in results]
        return JSONResponse(completion_object(job.rid, job.model, choices, usage(len(job.ids), completion), job.chat))
    events: asyncio.Queue = asyncio.Queue()
    tasks = [asyncio.ensure_future(_pump(backend, job, i, events)) for i in range(job.n)]
    try:
        first = await events.get()
        if isinstance(first, ApiError):
            raise first
    except BaseException:                   # an error, or the client left before the first token
        for t in tasks:
            t.cancel()
        raise
    return SSEResponse(_sse(backend, job, first, events, tasks, log_fields), media_type="text/event-stream",
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _pump(backend: Backend, job: Job, index: int, events: asyncio.Queue) -> None:
    try:
        events.put_nowait(("done", await run_choice(backend, job, index, events.put_nowait)))
    except ApiError as e:
        events.put_nowait(e)
    except Exception as e:  # noqa: BLE001 - the stream ends with an error event instead of hanging
        log.exception("choice %d of %s failed", index, job.rid)
        events.put_nowait(ApiError(500, f"internal error: {type(e).__name__}: {e}"))


async def _sse(backend: Backend, job: Job, first, events: asyncio.Queue, tasks: list, log_fields: dict):
    def chunk(index: int, text: str | None, finish: str | None = None, is_first: bool = False) -> str:
        c = choice(index, text, finish, job.chat, delta=True, first=is_first)
        obj = completion_object(job.rid, job.model, [c], None, job.chat)
        if job.chat:
            obj["object"] = "chat.completion.chunk"
        return f"data: {json.dumps(obj)}\n\n"
    try:
        if job.chat:
            for i in range(job.n):
                yield chunk(i, None, is_first=True)
        pending, item, completion = job.n, first, 0
        while True:
            if isinstance(item, ApiError):
                yield sse_error(item)
                log_fields["outcome"] = "server_error" if item.status >= 500 else "client_error"
                break
            if item[0] == "done":
                summary = item[1]
                completion += summary["tokens"]
                yield chunk(summary["index"], None, summary["finish_reason"])
                pending -= 1
                if not pending:
                    break
            else:
                yield chunk(item[0], item[1])
            item = await events.get()
        if job.include_usage and pending == 0:
            obj = completion_object(job.rid, job.model, [], usage(len(job.ids), completion), job.chat)
            obj["object"] = "chat.completion.chunk" if job.chat else "text_completion"
            yield f"data: {json.dumps(obj)}\n\n"
        _account(backend, job, log_fields, completion)
        yield "data: [DONE]\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        log_fields["outcome"] = "cancelled"          # the client went away mid-stream
        raise
    finally:
        for t in tasks:
            t.cancel()


def _account(backend: Backend, job: Job, log_fields: dict, completion: int) -> None:
    backend.metrics.prompt_tokens.inc(len(job.ids))
    backend.metrics.generation_tokens.inc(completion)
    backend.metrics.e2e.observe(time.perf_counter() - job.arrival)
    log_fields.update(prompt_tokens=len(job.ids), completion_tokens=completion, n=job.n, retrieval=job.kind)


class SSEResponse(StreamingResponse):
    """A StreamingResponse that always closes its generator, so a client gone mid-stream cancels the work."""

    async def stream_response(self, send) -> None:
        async with contextlib.aclosing(self.body_iterator):
            try:
                await super().stream_response(send)
            except OSError:
                pass
