"""A server process's life: bind before the slow start-up, serve, drain on SIGTERM/SIGINT, exit cleanly."""
from __future__ import annotations

import asyncio
import logging
import signal
import socket

from host.spec.errors import InputError

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; InputError (one line) when the address is taken or invalid.

    Servers bind first, so a port in use is reported before an index is loaded or a model warmed."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    backlog=1024, reuse_port=False)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


async def serve_node(node, host: str, port: int, on_ready=None, *, drain_timeout: float = 30.0,
                     sock: socket.socket | None = None) -> None:
    """Start ``node`` (async start/serve_forever/close, and drain if it can), call ``on_ready(host, port)`` once
    it listens, serve until cancelled or SIGTERM/SIGINT; on a signal drain it (at most ``drain_timeout`` s),
    then close."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    caught: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        caught.append(sig.name)
        stop.set()

    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            handled.append(sig)
        except (RuntimeError, ValueError):   # not the main thread: signals stay with the caller
            pass
    try:
        addr = await (node.start(host, port, sock=sock) if sock is not None else node.start(host, port))
        if on_ready:
            on_ready(*addr)
        serving, stopping = asyncio.create_task(node.serve_forever()), asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set() and hasattr(node, "drain"):
            log.info("%s: draining: no new connections, finishing requests in flight (at most %.1f s)",
                     caught[0], drain_timeout)
            left = await node.drain(drain_timeout)
            log.info("drained%s; closing", f", {left} request(s) cut off at the drain timeout" if left else "")
        elif stop.is_set():
            log.info("%s: closing", caught[0])
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await node.close()


def check_drain_timeout(seconds: float) -> float:
    if not seconds >= 0:
        raise InputError(f"--drain-timeout must be >= 0 seconds, not {seconds!r}")
    return seconds


