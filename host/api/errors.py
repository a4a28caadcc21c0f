"""OpenAI-style error objects: ``{"error": {"message", "type", "param", "code"}}`` with the matching HTTP status."""
from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from host.spec.errors import AnoleError

log = logging.getLogger(__name__)


class ApiError(AnoleError):
    """A request the API answers with an error object (status 4xx for the client's fault, 5xx for ours)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    @property
    def kind(self) -> str:
        if self.status == 401:
            return "authentication_error"
        return "invalid_request_error" if self.status < 500 else "server_error"

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def error_response(e: ApiError) -> JSONResponse:
    return JSONResponse(e.body(), status_code=e.status)


def sse_error(e: ApiError) -> str:
    """The error as a server-sent event, for a failure after the stream began (as OpenAI sends it)."""
    return f"data: {json.dumps(e.body())}\n\n"


_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "none"}


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    loc = []
    for part in first.get("loc", ())[1:]:           # ("body", field, ..., then pydantic's union member tags)
        if isinstance(part, str) and (part in _TYPE_TAGS or "[" in part):
            break
        loc.append(str(part))
    if first.get("type") == "json_invalid":
        return error_response(ApiError(400, "the request body is not valid JSON", code="invalid_json"))
    msg = first.get("msg", "invalid request")
    where = ".".join(loc)
    return error_response(ApiError(400, f"{where}: {msg}" if where else msg, param=where or None,
                                   code="invalid_value"))


def install(app: FastAPI) -> None:
    """Every error the app raises leaves as an OpenAI error object; nothing else reaches the client."""
    app.add_exception_handler(ApiError, lambda r, e: error_response(e))
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, lambda r, e: error_response(ApiError(e.status_code, str(e.detail))))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", getattr(request.state, "request_id", "?"))
        return error_response(ApiError(500, f"internal error: {type(exc).__name__}: {exc}"))
    app.add_exception_handler(Exception, unexpected)
