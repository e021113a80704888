"""Runs the real Agent (SystemClock, StateStore, Agent.run) with the session layer, as the
daemon will once it wires `SessionLayer`. Used by test_restart.py as a process to kill -9.
Not a test module."""

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from agent.api.session_layer import SessionConfig, SessionLayer
from agent.daemon import Agent
from agent.os.clocksource import SystemClock
from agent.store.state import StateStore


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--policy", type=Path, required=True)
    p.add_argument("--bus", required=True)
    p.add_argument("--child-uid", type=int, required=True)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    store = StateStore(args.state / "state.sqlite")
    agent = Agent(store, SystemClock(), args.policy)
    if not agent.load_policy().ok:
        return 2
    layer = SessionLayer(agent, SessionConfig(child_uid=args.child_uid, bus_address=args.bus,
                                              recheck_seconds=0.5))

    async def serve() -> None:
        await layer.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, agent.stop)
        await agent.run()
        await layer.stop()

    try:
        asyncio.run(serve())
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
