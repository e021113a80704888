"""Bearer secrets: guardian sessions and CSRF tokens (random, stored as SHA-256), and device
tokens (stateless: an HMAC under the server's token key, so any process can check one
without a database read; the device row is read anyway, which is where a revocation shows).
"""

from __future__ import annotations

import hashlib
import hmac
import os

from protocol.encoding import b64, unb64
from protocol.errors import ProtocolError

TOKEN_BYTES = 32


def new_secret() -> str:
    return b64(os.urandom(TOKEN_BYTES))


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii", "replace")).digest()


def same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def csrf_token(key: bytes, session_token: str) -> str:
    """The session's CSRF token: an HMAC of the session token, so every tab of the app gets
    the same one from GET /session and nothing more is stored (a cross-site page can send the
    cookie but cannot read this)."""
    return b64(hmac.new(key, b"csrf\x00" + session_token.encode("ascii", "replace"), hashlib.sha256).digest())


def device_token(key: bytes, device_id: str, expires_at: int) -> str:
    msg = f"d1.{device_id}.{expires_at}"
    mac = hmac.new(key, msg.encode(), hashlib.sha256).digest()
    return f"{msg}.{b64(mac)}"


def read_device_token(key: bytes, token: str, now: int) -> str | None:
    """The device id the token names, if it is genuine and unexpired; None otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != "d1" or len(parts[1]) != 32 or not parts[2].isdigit():
        return None
    try:
        mac = unb64(parts[3], "token", 32)
    except ProtocolError:
        return None
    want = hmac.new(key, f"d1.{parts[1]}.{parts[2]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, want) or int(parts[2]) <= now:
        return None
    return parts[1]
