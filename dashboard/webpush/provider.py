"""The notification provider interface.

A provider is told "tell these guardians that something is waiting" with a short cleartext
summary that names no content (a request's kind, the device's label is not even sent: the
app looks it up). Web Push is the first provider; FCM-backed Web Push (Chrome on Android)
is not reachable from mainland China, so a deployment there plugs a domestic push channel
in here (a vendor push SDK's server API, or an SMS/WeChat template message) by implementing
`Notifier` and passing it to `create_app`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Notification:
    family: str
    device: str
    kind: str  # "request" (a child's request is waiting); more kinds may follow
    data: dict[str, Any]


class Notifier(Protocol):
    def notify(self, account_ids: list[int], notification: Notification) -> None:
        """Queue a notification for these accounts; never blocks the caller on the network."""


class NullNotifier:
    def notify(self, account_ids: list[int], notification: Notification) -> None:
        return None
