"""Request deadlines on the wire: a client puts the seconds it will still wait into ``deadline_s`` of any
request; the server drops the work when they have passed (``E_DEADLINE``) and hands what is left on to the
nodes it calls.  Seconds remaining rather than a wall-clock instant, so hosts need no synchronised clocks."""
from __future__ import annotations

import asyncio
import contextvars
import math

from host.net.frames import E_BAD_REQUEST, E_DEADLINE, RpcError

FIELD = "deadline_s"
_current: contextvars.ContextVar[float | None] = contextvars.ContextVar("anole_deadline", default=None)


def now() -> float:
    return asyncio.get_running_loop().time()


def after(seconds: float | None) -> float | None:
    """A deadline ``seconds`` from now (event-loop clock), None for none; RpcError(E_BAD_REQUEST) unless a
    finite number > 0."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
        raise RpcError(E_BAD_REQUEST, f"{FIELD} must be a number of seconds > 0, not {seconds!r}")
    return now() + float(seconds)


def take(fields: dict) -> float | None:
    """Remove ``deadline_s`` from a request's field map -> absolute deadline (event-loop clock) or None."""
    return after(fields.pop(FIELD, None))


def current() -> float | None:
    """The deadline of the request this task serves (set by the server around its handler)."""
    return _current.get()


def set_current(deadline: float | None) -> None:
    """Make ``deadline`` the one ``current()`` returns in this task (the server does, per request)."""
    _current.set(deadline)


def remaining(deadline: float | None, what: str) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline); RpcError(E_DEADLINE) naming ``what`` if none."""
    if deadline is None:
        return None
    left = deadline - now()
    if left <= 0:
        raise RpcError(E_DEADLINE, f"{what}: deadline passed")
    return left


def earliest(*deadlines: float | None) -> float | None:
    given = [d for d in deadlines if d is not None]
    return min(given) if given else None
