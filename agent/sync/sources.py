"""Where the daily summary and the app catalogue come from in the daemon: the Agent's
policy, the state store's usage, the ledger's purchases, the exec gate's app catalogue."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from agent.core.policy import Policy
from agent.core.usage import Usage
from agent.execgate.catalogue import AppInfo
from agent.store.ledger import Ledger
from agent.store.state import StateStore
from protocol.messages import CatalogueApp


@dataclass
class DaemonSource:
    current_policy: Callable[[], Policy]
    store: StateStore
    ledger: Ledger
    catalogue: Callable[[], Mapping[str, AppInfo]] = dict

    def policy(self) -> Policy:
        return self.current_policy()

    def usage_since(self, start: datetime) -> Usage:
        return self.store.usage_since(start)

    def purchases_between(self, start: datetime, end: datetime) -> list[dict[str, object]]:
        return [{"item": p.item, "amount": p.amount, "currency": p.currency, "status": p.status.value}
                for p in self.ledger.purchases() if start <= p.created_at < end]

    def apps(self) -> list[CatalogueApp]:
        return [CatalogueApp(a.app_id, a.name[:200], tuple(sorted(a.categories))[:32])
                for a in self.catalogue().values()]
