"""The network filter as the daemon sees it: DNS filter + nft table, following the Decision.

    net = NetworkFilter(filter_settings, child_uids=(uid,), clock=trusted_now, events=sink)
    net.start(decision.filter, decision.policy_version)
    ...  # on every new Decision:
    net.update(decision.filter, decision.policy_version)
    ...
    net.stop()

The filter binds before the table redirects anything to it, and the table is replaced
(atomically) only when the allowlist-only switch flips; everything else is a snapshot swap
inside the filter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent.core.policy import FilterProfile
from agent.filter import nft
from agent.filter.server import DnsFilter, FilterSettings
from agent.store.events import EventSink


class NetworkFilter:
    def __init__(
        self,
        settings: FilterSettings,
        child_uids: tuple[int, ...],
        *,
        clock: Callable[[], datetime],
        events: EventSink | None = None,
        nft_settings: nft.NftSettings | None = None,
    ) -> None:
        """`clock()` stamps DNS-block events: the daemon passes the trusted clock."""
        port = settings.listen[0][1]
        self.settings = settings
        self.clock = clock  # stamps DNS_BLOCKED events (the daemon's trusted time)
        self.events = events
        self.nft_settings = nft_settings or nft.NftSettings(child_uids, port)
        if self.nft_settings.filter_port != port:
            raise ValueError(
                f"nft filter_port {self.nft_settings.filter_port} is not the filter's port {port}"
            )
        self._nft: nft.Nft | None = None
        self._filter: DnsFilter | None = None
        self._allowlist_only: bool | None = None

    @property
    def dns(self) -> DnsFilter | None:
        return self._filter

    def start(self, profile: FilterProfile, version: int) -> None:
        self._nft = nft.Nft()
        self._filter = DnsFilter(
            self.settings, profile, version, clock=self.clock, events=self.events,
            learner=nft.NftSetLearner(self._nft),
        )
        self._filter.start()
        try:
            self._apply(profile.allowlist_only)
        except nft.NftError:
            self._filter.stop()
            raise

    def update(self, profile: FilterProfile, version: int) -> None:
        if self._filter is None:
            raise RuntimeError("NetworkFilter.update before start")
        if profile.allowlist_only != self._allowlist_only:
            # Switch the filter first when tightening, the table first when loosening,
            # so there is never a moment with the looser of both.
            if profile.allowlist_only:
                self._filter.set_profile(profile, version)
                self._apply(True)
            else:
                self._apply(False)
                self._filter.set_profile(profile, version)
        elif version != self._filter.version or profile != self._filter_profile():
            self._filter.set_profile(profile, version)

    def _filter_profile(self) -> FilterProfile | None:
        return self._filter.profile if self._filter is not None else None

    def _apply(self, allowlist_only: bool) -> None:
        assert self._nft is not None
        nft.apply(replace(self.nft_settings, allowlist_only=allowlist_only), self._nft)
        self._allowlist_only = allowlist_only

    def stop(self) -> None:
        try:
            if self._nft is not None:
                nft.remove(self._nft)
                self._nft.close()
        finally:
            self._nft = None
            if self._filter is not None:
                self._filter.stop()
                self._filter = None
