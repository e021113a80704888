"""The manufacturer's agent settings (/etc/minormode/agent.conf.d/20-factory.conf) from the
factory settings; run by build.sh, the same for every variant.

    python3 agent_conf.py FACTORY_TOML OUT_CONF     (PYTHONPATH: the repository)

The image's own settings (the child's uid, the exec gate) are a drop-in in the repository,
image-build/agent.conf.d/10-image.conf; this renders the one that follows it, from
FACTORY_TOML:
- the DNS filter, always: `dns_upstream` with the manufacturer's `dns_upstreams` if set,
  else `dns_upstreams_from = "/run/systemd/resolve/resolv.conf"` (the network's resolvers,
  as systemd-resolved learns them from DHCP; followed when they change);
- with `dashboard_url`: `dashboard` and `pair_on_start = true` (and `dashboard_ca` with
  `dashboard_ca`, which layer.sh installs as DASHBOARD_CA); without it the device is
  offline only, and the summary printed for the build output says so.
Each line the build prints is a comment in the file too, so the device says where its
settings came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent.factory import FactoryError, FactorySettings, load_factory_settings

RESOLVED_FILE = "/run/systemd/resolve/resolv.conf"
DASHBOARD_CA = "/etc/minormode/dashboard-ca.pem"
DROPIN = "20-factory.conf"


def factory_settings(factory: FactorySettings) -> tuple[dict[str, object], list[str]]:
    """(the agent settings the factory settings give, what the build output says of them)."""
    settings: dict[str, object] = {}
    said: list[str] = []
    if factory.dns_upstreams:
        settings["dns_upstream"] = list(factory.dns_upstreams)
        said.append(f"DNS filter on: forwards to the manufacturer's resolvers "
                    f"{', '.join(factory.dns_upstreams)}")
    else:
        settings["dns_upstreams_from"] = RESOLVED_FILE
        said.append(f"DNS filter on: forwards to the network's resolvers ({RESOLVED_FILE}, "
                    "from DHCP through systemd-networkd and systemd-resolved)")
    if factory.dashboard_url is None:
        said.append("no dashboard_url in the factory settings: the device is OFFLINE ONLY "
                    "(it syncs with no guardian dashboard)")
    else:
        settings["dashboard"] = factory.dashboard_url
        settings["pair_on_start"] = True
        if factory.dashboard_ca is not None:
            settings["dashboard_ca"] = DASHBOARD_CA
        ca = f"CA {factory.dashboard_ca}" if factory.dashboard_ca else "the system's CAs"
        said.append(f"dashboard: {factory.dashboard_url} (TLS checked against {ca}); "
                    "pairing offered while unpaired")
    return settings, said


def toml_value(value: object) -> str:
    """A string, a bool or a list of strings in TOML (a JSON string is a TOML basic string:
    the same escapes, and json.dumps writes no others)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def render(factory: FactorySettings, source: str) -> tuple[str, list[str]]:
    """The drop-in's text, and the summary for the build output."""
    settings, said = factory_settings(factory)
    lines = ["# The manufacturer's agent settings, rendered by image-build (lib/agent_conf.py) from",
             f"# {source}; installed as /etc/minormode/agent.conf.d/{DROPIN}, after 10-image.conf.",
             "# A later drop-in (e.g. 50-local.conf) changes a key; this file is the factory's.",
             *(f"#   {line}" for line in said),
             *(f"{key} = {toml_value(value)}" for key, value in settings.items())]
    return "\n".join(lines) + "\n", said


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: agent_conf.py FACTORY_TOML OUT_CONF", file=sys.stderr)
        return 2
    factory_file, out = (Path(a) for a in argv)
    try:
        factory = load_factory_settings(factory_file)
    except FactoryError as exc:
        print(f"agent_conf.py: {exc}", file=sys.stderr)
        return 2
    text, said = render(factory, factory_file.name)
    out.write_text(text)
    for line in said:
        print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
