"""Optional shared-secret access control for host.net: a mutual HMAC-SHA256 challenge-response in the
first two exchanges of a connection (message type T_AUTH; docs/protocol.md section 1).

The secret never crosses the wire; each side proves it knows it over fresh nonces of both.  It does not
encrypt or sign later frames: run it on a network you trust against eavesdroppers, or tunnel it.  The
secret comes from the ``secret`` argument or, when that is None, the environment variable ANOLE_SECRET.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets

from host.net.codec import T_AUTH
from host.net.frames import E_AUTH, RpcError

log = logging.getLogger(__name__)
ENV = "ANOLE_SECRET"
NONCE = 16


def resolve(secret: str | bytes | None) -> bytes | None:
    """The secret to use: the argument, else $ANOLE_SECRET, else None (open)."""
    secret = os.environ.get(ENV) if secret is None else secret
    if not secret:
        return None
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def _mac(secret: bytes, role: bytes, a: bytes, b: bytes) -> bytes:
    return hmac.new(secret, b"anole-auth|" + role + b"|" + a + b"|" + b, hashlib.sha256).digest()


def _nonce(fields: dict, name: str) -> bytes:
    v = fields.get(name)
    if not isinstance(v, bytes) or len(v) != NONCE:
        raise RpcError(E_AUTH, f"authentication: {name} must be {NONCE} bytes")
    return v


class ServerAuth:
    """The server's side for one connection: answers the hello with its nonce and proof, checks the
    client's proof.  ``done`` is True once the client has proven the secret (always, without one)."""

    def __init__(self, secret: bytes | None):
        self.secret, self.done = secret, secret is None
        self._nonce = self._cnonce = None

    def handle(self, fields: dict) -> dict:
        """One T_AUTH request -> its answer; RpcError(E_AUTH) when the proof is wrong."""
        if self.secret is None:
            return {"open": True}
        if self._nonce is None:
            self._cnonce, self._nonce = _nonce(fields, "cnonce"), secrets.token_bytes(NONCE)
            return {"nonce": self._nonce, "proof": _mac(self.secret, b"server", self._cnonce, self._nonce)}
        if not hmac.compare_digest(fields.get("mac") or b"", _mac(self.secret, b"client", self._nonce, self._cnonce)):
            raise RpcError(E_AUTH, "authentication failed: wrong shared secret")
        self.done = True
        return {}


async def authenticate(call, secret: bytes, address: str) -> None:
    """Client side: prove ``secret`` to the server behind ``call(msg_type, fields)`` and check its proof."""
    cnonce = secrets.token_bytes(NONCE)
    hello = await call(T_AUTH, {"cnonce": cnonce})
    if hello.get("open"):
        log.warning("%s runs without a shared secret; this client has one", address)
        return
    nonce = _nonce(hello, "nonce")
    if not hmac.compare_digest(hello.get("proof") or b"", _mac(secret, b"server", cnonce, nonce)):
        raise RpcError(E_AUTH, f"{address} could not prove the shared secret: the secrets differ")
    await call(T_AUTH, {"mac": _mac(secret, b"client", nonce, cnonce)})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an IP address or 'localhost') can only be reached from this machine."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def warn_if_exposed(host: str, secret: bytes | None, what: str) -> None:
    """Log a warning when ``host`` is not a loopback address and no secret guards the server."""
    if secret is None and not is_loopback(host):
        log.warning("%s listens on %s without a shared secret: anyone who can reach it can use it "
                    "(set %s, or bind to 127.0.0.1)", what, host, ENV)
