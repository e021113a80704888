"""The pure core: policy model, trusted-clock arithmetic, usage, and `decide`.

Nothing here performs I/O (beyond parsing a file it is handed and the tz database), reads
the clock, or imports an OS layer; `tests/unit/core/test_purity.py` enforces that.
"""

from agent.core.decide import decide
from agent.core.decision import AppAccess, AppVerdict, Change, ChangeKind, Decision, LockReason
from agent.core.grants import Grant, GrantKind, GrantSource
from agent.core.parse import (
    PolicyError,
    default_policy,
    load_policy_file,
    parse_policy_text,
    policy_from_mapping,
    policy_to_mapping,
)
from agent.core.policy import AgeBand, Policy
from agent.core.usage import Interval, Usage

__all__ = [
    "AgeBand", "AppAccess", "AppVerdict", "Change", "ChangeKind", "Decision", "Grant",
    "GrantKind", "GrantSource", "Interval", "LockReason", "Policy", "PolicyError", "Usage",
    "decide", "default_policy", "load_policy_file", "parse_policy_text", "policy_from_mapping",
    "policy_to_mapping",
]
