"""The manufacturer's factory settings (/etc/minormode/factory.toml), read and validated.

Read at image build time (the default policy follows the age band; the dashboard, its CA
and the DNS resolvers become the agent's settings) and at first boot. Bad settings get one
error listing every problem with the file and key; nothing is used. Run as
`python -m agent.factory FILE [KEY]` to check a file or print one value (empty if unset).

Optional keys: without `dashboard_url` the device is offline only (it syncs nothing);
without `dns_upstreams` the DNS filter forwards to the network's resolvers.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from agent.core.policy import AgeBand
from agent.core.tomlfile import TomlFileError, load_toml

LOCALES = ("zh-CN", "en")
KEYS = ("manufacturer", "model", "default_age_band", "dashboard_url", "dashboard_ca",
        "dns_upstreams", "locale")
MAX_UPSTREAMS = 8


class FactoryError(ValueError):
    """The factory settings file is missing, unreadable or has bad values."""


@dataclass(frozen=True)
class FactorySettings:
    manufacturer: str
    model: str
    default_age_band: AgeBand
    dashboard_url: str | None  # None: offline only
    locale: str
    dashboard_ca: str | None = None  # a PEM file, relative to the factory file (build time)
    dns_upstreams: tuple[str, ...] = ()  # "IP:PORT"; empty: the network's resolvers

    def as_dict(self) -> dict[str, object]:
        """The settings as the file has them (optional keys only when set)."""
        out: dict[str, object] = {"manufacturer": self.manufacturer, "model": self.model,
                                  "default_age_band": self.default_age_band.value}
        if self.dashboard_url is not None:
            out["dashboard_url"] = self.dashboard_url
        if self.dashboard_ca is not None:
            out["dashboard_ca"] = self.dashboard_ca
        if self.dns_upstreams:
            out["dns_upstreams"] = list(self.dns_upstreams)
        out["locale"] = self.locale
        return out


def _text(data: dict[str, object], key: str, problems: list[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        problems.append(f"{key}: must be a non-empty string of at most 200 characters, got {value!r}")
        return ""
    if re.search(r"[\x00-\x1f\x7f]", value):
        problems.append(f"{key}: must not contain control characters")
    return value.strip()


def settings_from_mapping(data: dict[str, object], where: str) -> FactorySettings:
    problems: list[str] = []
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)} (known: {', '.join(KEYS)})")
    manufacturer = _text(data, "manufacturer", problems)
    model = _text(data, "model", problems)
    band_text = _text(data, "default_age_band", problems)
    band = AgeBand.AGE_8_12
    if band_text:
        try:
            band = AgeBand(band_text)
        except ValueError:
            problems.append(f"default_age_band: {band_text!r} is not one of "
                            f"{', '.join(b.value for b in AgeBand)}")
    url = _text(data, "dashboard_url", problems) if "dashboard_url" in data else None
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            problems.append(f"dashboard_url: {url!r} must be an https:// URL with a host name")
    ca = _text(data, "dashboard_ca", problems) if "dashboard_ca" in data else None
    if ca is not None and url is None:
        problems.append("dashboard_ca: given without a dashboard_url")
    upstreams = _upstreams(data.get("dns_upstreams", []), problems)
    locale = _text(data, "locale", problems)
    if locale and locale not in LOCALES:
        problems.append(f"locale: {locale!r} is not one of {', '.join(LOCALES)}")
    if problems:
        raise FactoryError(f"{where}: bad factory settings:\n" + "\n".join(f"  {p}" for p in problems))
    return FactorySettings(manufacturer, model, band, url, locale, ca, upstreams)


def _upstreams(value: object, problems: list[str]) -> tuple[str, ...]:
    """Fixed resolvers "IP:PORT" (the agent's own check refuses the filter's address)."""
    if not isinstance(value, list) or len(value) > MAX_UPSTREAMS:
        problems.append(f"dns_upstreams: must be a list of at most {MAX_UPSTREAMS} \"IP:PORT\" "
                        f"strings, got {value!r}")
        return ()
    good: list[str] = []
    for item in value:
        host, sep, port = item.rpartition(":") if isinstance(item, str) else ("", "", "")
        try:
            ip_address(host.strip("[]"))
            ok = bool(sep) and port.isdigit() and 0 < int(port) < 65536
        except ValueError:
            ok = False
        if not ok:
            problems.append(f"dns_upstreams: {item!r} is not IP:PORT, e.g. \"223.5.5.5:53\"")
        else:
            good.append(str(item))
    return tuple(good)


def load_factory_settings(path: Path) -> FactorySettings:
    try:
        data = load_toml(path, "factory settings")
    except TomlFileError as exc:
        raise FactoryError(str(exc)) from exc
    return settings_from_mapping(data, str(path))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or (len(args) == 2 and args[1] not in KEYS):
        print(f"usage: python -m agent.factory FILE [{'|'.join(KEYS)}]", file=sys.stderr)
        return 2
    try:
        settings = load_factory_settings(Path(args[0]))
    except FactoryError as exc:
        print(exc, file=sys.stderr)
        return 2
    if len(args) == 2:
        value = settings.as_dict().get(args[1], "")
        print(" ".join(value) if isinstance(value, list) else value)
    else:
        print(f"{args[0]}: valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
