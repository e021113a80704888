"""The network filter as the daemon sees it: DNS filter + nft table, following the Decision.

    net = NetworkFilter(filter_settings, child_uids=(uid,), clock=trusted_now, events=sink)
    net.start(decision.filter, decision.policy_version)
    ...  # on every new Decision:
    net.update(decision.filter, decision.policy_version)
    ...
    net.stop()

The filter binds before the table redirects anything to it. The table's egress is closed
in every mode (the child reaches only addresses the filter resolved for it, and the
policy's `egress_allow` networks); it is replaced (atomically: a new epoch, empty learned
sets) only when the filter tightens into allowlist-only, so nothing learned under the
looser profile, and no flow it allowed, outlives the switch. A changed `egress_allow`
replaces the fixed sets alone; everything else is a snapshot swap inside the filter.
The epoch (the conntrack mark of the flows a table accepted) is the settings' (1) in the
looser modes, so the child's flows, a call among them, survive an agent restart;
allowlist-only, at start or when tightening, takes a fresh one, so no flow from before
survives it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent.core.policy import FilterProfile
from agent.filter import nft
from agent.filter.server import DnsFilter, FilterSettings
from agent.store.events import EventSink


def with_app_domains(profile: FilterProfile, domains: frozenset[str]) -> FilterProfile:
    """The profile with the domains the apps allowed now declare (`X-Minormode-Domains`)
    added to its allowed domains, so an emergency or calls app keeps its servers in
    allowlist-only mode (curfew, school). The guardian's own block wins: a declared domain
    that is, or is under, one of the profile's blocked domains is left out."""
    def blocked(name: str) -> bool:
        return any(name == b or name.endswith("." + b) for b in profile.block_domains)

    extra = frozenset(d for d in domains if not blocked(d)) - profile.allow_domains
    return replace(profile, allow_domains=profile.allow_domains | extra) if extra else profile


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
        self._learner: nft.NftSetLearner | None = None
        self._filter: DnsFilter | None = None
        self._allowlist_only = False
        self._fixed: frozenset[str] = frozenset()
        self._epoch = self.nft_settings.epoch
        # the names the apps allowed now declare (the daemon sets them before `update`)
        self.app_domains: frozenset[str] = frozenset()

    @property
    def dns(self) -> DnsFilter | None:
        return self._filter

    def start(self, profile: FilterProfile, version: int) -> None:
        profile = with_app_domains(profile, self.app_domains)
        self._learner = nft.NftSetLearner(nft.Nft())
        self._filter = DnsFilter(
            self.settings, profile, version, clock=self.clock, events=self.events,
            learner=self._learner,
        )
        self._filter.start()
        if profile.allowlist_only:  # nothing from before this start may survive
            self._epoch = _fresh_epoch(self._epoch)
        try:
            self._install(profile)
        except nft.NftError:
            self._filter.stop()
            raise

    def reload_lists(self) -> None:
        """The compiled lists were replaced on disk (a bundle installed, a compile): a fresh
        matcher for the same profile opens them (the old mappings stay valid for lookups
        holding them). Without this they came into force only at the next profile change."""
        if self._filter is not None:
            self._filter.set_profile(self._filter.profile, self._filter.version)

    def update(self, profile: FilterProfile, version: int) -> None:
        if self._filter is None or self._learner is None:
            raise RuntimeError("NetworkFilter.update before start")
        profile = with_app_domains(profile, self.app_domains)
        if version != self._filter.version or profile != self._filter_profile():
            self._filter.set_profile(profile, version)
        if profile.allowlist_only and not self._allowlist_only:
            # Tightening: the filter first (no new looser answers), then a new table whose
            # empty sets and new epoch drop what the looser profile let the child reach.
            self._epoch = _fresh_epoch(self._epoch)
            self._install(profile)
        else:
            self._allowlist_only = profile.allowlist_only
            if profile.egress_allow != self._fixed:
                self._learner.set_fixed(sorted(profile.egress_allow))
                self._fixed = profile.egress_allow

    def set_upstreams(self, upstreams: tuple[tuple[str, int], ...]) -> None:
        """Forward to these resolvers from now on (the network's changed; any thread)."""
        if self._filter is None:
            raise RuntimeError("NetworkFilter.set_upstreams before start")
        self._filter.set_upstreams(upstreams)

    def _filter_profile(self) -> FilterProfile | None:
        return self._filter.profile if self._filter is not None else None

    def _install(self, profile: FilterProfile) -> None:
        assert self._learner is not None
        self._learner.install(replace(self.nft_settings, fixed_allow=tuple(sorted(profile.egress_allow)),
                                      epoch=self._epoch))
        self._allowlist_only = profile.allowlist_only
        self._fixed = profile.egress_allow

    def stop(self) -> None:
        try:
            if self._learner is not None:
                nft.remove(self._learner.nft)
                self._learner.nft.close()
        finally:
            self._learner = None
            if self._filter is not None:
                self._filter.stop()
                self._filter = None


def _fresh_epoch(current: int) -> int:
    """An epoch no earlier table of this device is likely to have used (from the clock,
    never 1, never `current`)."""
    epoch = 2 + int(time.time()) % (2**31 - 3)
    return epoch if epoch != current else 2 + (epoch - 1) % (2**31 - 3)
