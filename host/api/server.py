"""The API server: connects the backend (LLM node, memory nodes), warms it up, serves the app with uvicorn."""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import uvicorn

from host.api.app import create_app
from host.api.backend import Backend
from host.api.config import ApiConfig
from host.net.auth import is_loopback
from host.net.server import serve_node
from host.net.timeouts import within
from host.spec.errors import InputError

log = logging.getLogger(__name__)


class ApiServer:
    """``start`` -> (host, port) once connected, warmed up and listening; ``serve_forever``; ``close``."""

    def __init__(self, config: ApiConfig, embedder=None):
        self.backend = Backend(config, embedder=embedder)
        self._uv: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        cfg = self.backend.config
        config = uvicorn.Config(create_app(self.backend), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, server_header=False,
                                ssl_certfile=cfg.ssl_certfile, ssl_keyfile=cfg.ssl_keyfile)
        try:
            config.load()
        except (ssl.SSLError, OSError) as e:
            raise InputError(f"cannot load the TLS certificate {cfg.ssl_certfile}: {e}") from None
        warn_without_tls(host, config.ssl is not None)
        await self.backend.connect()
        sock = _listen(host, port)
        self._uv = uvicorn.Server(config)
        self._task = asyncio.create_task(self._uv.serve(sockets=[sock]))
        async with within(30):
            while not self._uv.started:
                if self._task.done():
                    await self._task
                    raise InputError(f"the API server on {host}:{port} did not start")
                await asyncio.sleep(0.01)
        addr = sock.getsockname()[:2]
        log.info("API for %s on %s://%s:%d (LLM nodes %s)", cfg.served_model_name,
                 "https" if config.ssl else "http", *addr, cfg.llm_node)
        return addr

    async def serve_forever(self) -> None:
        await self._task

    async def close(self) -> None:
        if self._uv is not None:
            self._uv.should_exit = True
            await asyncio.gather(self._task, return_exceptions=True)
        await self.backend.close()


def warn_without_tls(host: str, tls: bool) -> None:
    """Log a warning when the API binds a non-loopback address without TLS."""
    if not tls and not is_loopback(host):
        log.warning("the API listens on %s without TLS: requests and answers cross the network in clear "
                    "(give --ssl-certfile/--ssl-keyfile, or bind to 127.0.0.1)", host)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose proto is IPPROTO_TCP, so asyncio sets TCP_NODELAY on each connection (with
    proto 0, as socket.create_server makes it, every small SSE event would wait for the peer's delayed ACK)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          proto=socket.IPPROTO_TCP)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {e}") from None
    return sock


def run_api(config: ApiConfig, host: str, port: int, embedder=None, on_ready=None) -> None:
    """Serve until interrupted; on_ready(host, port) is called once ready (after the warm-up)."""
    asyncio.run(serve_node(ApiServer(config, embedder), host, port, on_ready))
