"""A D-Bus client run as another user (the child, a stranger) by the session tests.

Run with Debian's /usr/bin/python3 (dbus-python), not the venv (unreadable to other users):
    python3 dbus_client.py ADDRESS '[{"member": ..., "signature": ..., "args": [...]}, ...]'
Prints one JSON result per call: {"ok": true, "body": [...]} or {"ok": false, "error": NAME,
"message": TEXT}. Not collected by pytest; not imported by the agent.
"""

import json
import sys

import dbus


def plain(value):
    if isinstance(value, dbus.Boolean):
        return bool(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def main():
    conn = dbus.bus.BusConnection(sys.argv[1])
    results = []
    for c in json.loads(sys.argv[2]):
        try:
            body = conn.call_blocking(
                c.get("destination", "org.minormode.Agent1"),
                c.get("path", "/org/minormode/Agent1"),
                c.get("interface", "org.minormode.Agent1"),
                c["member"],
                c.get("signature", ""),
                c.get("args", []),
                timeout=10,
            )
            if not isinstance(body, tuple):
                body = () if body is None else (body,)
            results.append({"ok": True, "body": plain(list(body))})
        except dbus.exceptions.DBusException as exc:
            results.append({"ok": False, "error": exc.get_dbus_name(), "message": exc.get_dbus_message()})
    print(json.dumps(results))


main()
