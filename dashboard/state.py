"""What every request handler shares: settings, the database, the server's secrets, the
password hasher, the wake-up hub and the guardian notification provider."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dashboard.config import Settings
from dashboard.db.engine import Database
from dashboard.push.heartbeat import Heartbeat
from dashboard.push.hub import Hub
from dashboard.secrets import ServerSecrets
from dashboard.security.passwords import Hasher
from dashboard.webpush.provider import Notifier


def wall_clock() -> int:
    return int(time.time())


@dataclass
class AppState:
    settings: Settings
    db: Database
    secrets: ServerSecrets
    hasher: Hasher
    hub: Hub
    notifier: Notifier
    heartbeat: Heartbeat
    clock: Callable[[], int] = field(default=wall_clock)

    def now(self) -> int:
        return self.clock()
