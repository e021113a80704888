"""Development mode and test-only parts: never imported on a device.

The production wiring (`agent.runtime.services`, `agent.daemon`) imports this package only
when `--dev` is given; a test checks that importing the daemon leaves it unloaded.
"""

from __future__ import annotations

from agent.dev.child import DevChild
from agent.dev.session import DevSession
from agent.session.layer import SessionAgent


async def start_dev_session(agent: SessionAgent, child_uid: int | None) -> DevSession:
    """A private bus with a fake logind, the real session layer on it, and the simulated
    child who unlocks whenever the agent allows use (`child_uid` None: the developer)."""
    dev = DevSession(agent, child_uid=child_uid)
    await dev.start()
    agent.subscribe(DevChild(dev))
    return dev
