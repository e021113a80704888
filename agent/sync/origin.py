"""A dashboard URL's origin: what the device's log-in signature is bound to (PROTOCOL.md
§15). Pure, and free of the HTTP library, so the daemon's settings can check a URL."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit


def origin_of(url: str) -> str:
    """`https://host[:port]` of a dashboard URL; plain http only for a loopback host."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r}: a dashboard URL is https://host[:port]")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValueError(f"{url!r}: plain http is allowed only on loopback (development)")
    port = f":{parts.port}" if parts.port else ""
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}{port}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
