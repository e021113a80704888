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

from agent.os.clocksource import ClockSource, SystemClock
from agent.runtime.agent import Agent
from agent.runtime.clock import TrustedClock
from agent.runtime.config import DaemonConfig, parse_config
from agent.runtime.services import Services
from agent.store.layout import StoreLayout
from agent.store.state import StateStore

log = logging.getLogger("minormode.agent")


def _clock_source(config: DaemonConfig) -> ClockSource:
    if config.dev:
        from agent.dev.clock import SimulatedClock  # noqa: PLC0415 - development only

        return SimulatedClock(config.start, config.speed)
    return SystemClock()


def _configure_logging(config: DaemonConfig) -> None:
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        **({"filename": str(config.log_file)} if config.log_file else {"stream": sys.stderr}))


async def _serve(agent: Agent, services: Services) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, agent.stop)
    loop.add_signal_handler(signal.SIGINT, agent.stop)
    loop.add_signal_handler(signal.SIGHUP, agent.load_policy)
    try:
        await services.start()
        await agent.run()
    finally:
        await services.stop()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    _configure_logging(config)
    config.state.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = StateStore(config.state / "state.sqlite")
    clock = TrustedClock(_clock_source(config), store.load_watermark())
    layout = StoreLayout(config.state)
    journal = layout.open_journal(clock=clock.latest)
    clock.record_events_to(journal)
    ledger = layout.open_ledger()
    agent = Agent(store, clock, config.policy, config.band, events=journal)
    result = agent.load_policy()
    if not result.ok:
        log.warning("running with policy version %d (%s)", agent.policy.version,
                    "last good" if store.last_policy() else f"band {config.band.value} defaults")
    if config.dev:
        log.info("development mode: simulated clock at %gx from %s; the simulated child uses the "
                 "device whenever it is unlocked. Ctrl-C stops.", config.speed, config.start.isoformat())
    try:
        asyncio.run(_serve(agent, Services(agent, config, journal, ledger, clock.latest)))
    finally:
        journal.close()
        ledger.close()
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
