"""The FastAPI application: OpenAI routes, /health, /ready, /metrics, and one access-log line per request."""
from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from host.api import errors
from host.api.backend import Backend
from host.api.completions import prepare, respond
from host.api.protocol import ChatCompletionRequest, CompletionRequest, RetrieveRequest

log = logging.getLogger("host.api.access")
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/retrieve")
"""The endpoints counted in anole_api_requests_total (others would let clients add label values)."""
_REQUEST_ID = re.compile(r"[^\w.:-]")


def create_app(backend: Backend) -> FastAPI:
    """The app over a connected ``Backend`` (the server connects it before serving)."""
    app = FastAPI(title="anole", docs_url=None, redoc_url=None, openapi_url=None)
    errors.install(app)
    app.state.backend = backend

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        checks, llm_nodes = await backend.check_ready()
        return JSONResponse({"ready": all(checks.values()), "checks": checks, "llm_nodes": llm_nodes},
                            status_code=200 if all(checks.values()) else 503)

    @app.get("/metrics")
    async def metrics():
        backend.metrics.set_snapshot(await backend.snapshot())
        return Response(backend.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": backend.config.served_model_name, "object": "model",
                                            "created": 0, "owned_by": "anole",
                                            "max_model_len": backend.max_model_len}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await _generate(backend, body, request)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await _generate(backend, body, request)

    @app.post("/v1/retrieve")
    async def retrieve(body: RetrieveRequest):
        return await backend.retrieve(body.queries(), body.k, body.nprobe)

    return AccessLog(app, backend)


async def _generate(backend: Backend, body, request: Request):
    """Prepare and answer; a client that disconnects before the answer starts cancels the generation."""
    fields = request.scope["anole"]
    task = asyncio.ensure_future(_answer(backend, body, fields))
    watcher = asyncio.ensure_future(_wait_disconnect(request, task))
    try:
        return await task
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():        # the server is stopping, not the client leaving
            raise
        fields["outcome"] = "cancelled"
        return Response(status_code=499)
    finally:
        watcher.cancel()


async def _answer(backend: Backend, body, fields: dict):
    job = await prepare(backend, body)
    job.rid = f"{job.rid.split('-')[0]}-{fields['request_id']}"
    return await respond(backend, job, fields)


async def _wait_disconnect(request: Request, task: asyncio.Future) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
    task.cancel()


class AccessLog:
    """ASGI middleware: takes the client's X-Request-Id (or makes one), echoes it, counts the request by
    outcome and logs one INFO line when the response ends (with what the handler put in scope["anole"])."""

    def __init__(self, app: FastAPI, backend: Backend):
        self.app, self.backend = app, backend
        self.max_body = int(backend.config.max_body_mb * 2**20)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        rid = _REQUEST_ID.sub("", headers.get(b"x-request-id", b"").decode("latin-1"))[:64] or uuid.uuid4().hex
        fields = scope["anole"] = {"request_id": rid}
        status, t0 = [500], time.perf_counter()
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > self.max_body:
            too_big = errors.ApiError(413, f"the request body exceeds {self.max_body} bytes", code="body_too_large")
            app = errors.error_response(too_big)
        else:
            app = self.app

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = list(message.get("headers", [])) + [(b"x-request-id", rid.encode())]
            await send(message)
        try:
            await app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            code = status[0]
            outcome = fields.pop("outcome", None) or ("ok" if code < 400 else
                                                      "client_error" if code < 500 else "server_error")
            if path in ENDPOINTS:
                self.backend.metrics.requests.labels(path, outcome).inc()
            extra = " ".join(f"{k}={v}" for k, v in fields.items() if k != "request_id")
            log.info("%s %s %s %d %s %.1fms %s", rid, scope.get("method"), path, code, outcome,
                     (time.perf_counter() - t0) * 1e3, extra)
