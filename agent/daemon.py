"""The agent daemon's composition root: builds every part in order, runs one asyncio loop.

Wiring only, no state: the settings come from `agent.runtime.config`, the state machine is
`agent.runtime.agent.Agent`, the enforcement layers are `agent.runtime.services.Services`.
The order matters: the trusted clock first (every part stamps events with it), then the
journal it stamps and records its tamper events into, the Agent, the policy file, the
services, and the loop. Run as `python -m agent.daemon` (systemd/minormode-agent.service,
scripts/run-dev); `--help` lists the options.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from agent.core.calendar import local_day, zone
from agent.execgate.appguard import BaseError
from agent.os.clocksource import ClockSource, SystemClock
from agent.runtime import logs
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.runtime.config import DaemonConfig, parse_config
from agent.runtime.notify import ServiceNotifier, StartProgress
from agent.runtime.services import Services
from agent.store.floodsink import FloodSink
from agent.store.layout import StoreLayout
from agent.store.queueing import QueueingSink
from agent.store.recovery import StorageHealth
from agent.store.state import StateStore
from agent.sync.daily import DailyCounts, TallyingSink
from agent.sync.requests import RequestCollector
from agent.sync.store import SYNC_DB
from agent.trust.layer import TrustLayer

log = logging.getLogger("minormode.agent")


def _clock_source(config: DaemonConfig) -> ClockSource:
    if config.dev:
        from agent.dev.clock import SimulatedClock  # noqa: PLC0415 - development only

        return SimulatedClock(config.start, config.speed)
    return SystemClock()


def _reload(agent: Agent, services: Services) -> tuple[bool, str, int]:
    """SIGHUP: the policy file and the compiled lists again (`lists install` and `lists
    compile` end with a reload); the policy version in force afterwards, whichever it is."""
    result = agent.load_policy()
    if services.network is not None:
        services.network.reload_lists()
    return result.ok, result.message, agent.policy.version


async def _serve(agent: Agent, services: Services) -> None:
    loop = asyncio.get_running_loop()
    notifier = ServiceNotifier()
    agent.subscribe(notifier.decided)
    loop.add_signal_handler(signal.SIGTERM, agent.stop)
    loop.add_signal_handler(signal.SIGINT, agent.stop)
    loop.add_signal_handler(signal.SIGHUP, notifier.reload, lambda: _reload(agent, services))
    try:
        await services.start()
        services.progress.done()
        await agent.run()
    finally:
        await services.stop()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logs.configure(config.log_level, config.log_file)
    progress = StartProgress()
    progress.phase("state")
    config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = StateStore(config.state / "state.sqlite")
    clock = TrustedClock(_clock_source(config), store.load_watermark())
    layout = StoreLayout(config.state)
    journal = layout.open_journal(clock=clock.latest)
    counts = DailyCounts(config.state / SYNC_DB)
    storage = StorageHealth()  # a full disk: enforce from memory, locked (agent.store.queueing)
    queue = QueueingSink(journal, storage, clock.latest)
    tallied = TallyingSink(queue, counts, lambda: agent.policy.timezone)  # the journal, counted
    events = FloodSink(tallied, clock.latest)  # what the child can cause at will, bounded
    ledger = layout.open_ledger()
    agent = Agent(store, clock, config.policy, config.band, events=events, storage=storage)
    agent.retention_hooks.append(
        lambda cutoff: counts.purge_before(local_day(cutoff, zone(agent.policy.timezone))))
    clock.record_events_to(events)  # after the Agent: counting an event needs the policy's timezone
    trust = TrustLayer(config.state, agent, journal, ledger, clock.latest)  # before the policy file
    tallied.also = RequestCollector(trust, lambda: int(clock.latest().timestamp()))
    progress.phase("policy")
    result = agent.load_policy()
    if not result.ok:
        log.warning("running with policy version %d (%s)", agent.policy.version,
                    "last good" if store.last_policy() else f"band {config.band.value} defaults")
    if config.dev:
        log.info("development mode: simulated clock at %gx from %s; the simulated child uses the "
                 "device whenever it is unlocked. Ctrl-C stops.", config.speed, config.start.isoformat())
    try:
        services = Services(agent, config, journal, ledger, clock, trust, counts, tallied.also, events, queue,
                            progress=progress)
        asyncio.run(_serve(agent, services))
    except BaseError as exc:  # the manufacturer's settings, like a bad option: said, not a traceback
        log.error("not starting: %s", exc)
        return 2
    finally:
        counts.flush()
        counts.close()
        trust.close()
        journal.close()
        ledger.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
