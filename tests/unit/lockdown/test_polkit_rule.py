"""The shipped polkit rule, run by a JavaScript engine (node, standing in for polkitd's
Duktape: the file is plain ES5) against polkit's rule API: the child's group gets NO for
every action family the audit requires, anyone else is left to the actions' defaults."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.lockdown.polkit import CHILD_GROUP, CHILD_RULES, REFUSED

REPO = Path(__file__).parents[3]
RULES = REPO / "config/lockdown/etc/polkit-1/rules.d" / CHILD_RULES
ALLOWED_TO_THE_CHILD = ("org.freedesktop.login1.power-off", "org.freedesktop.login1.suspend",
                        "org.freedesktop.udisks2.filesystem-mount", "org.freedesktop.timedate1x.set-time")
HARNESS = """
const fs = require("fs");
const [rulesPath, group, actions] = process.argv.slice(1);
let rule = null;
const polkit = {Result: {NO: "no", YES: "yes", NOT_HANDLED: null}, addRule: f => { rule = f; }};
new Function("polkit", fs.readFileSync(rulesPath, "utf8"))(polkit);
const answers = {};
for (const id of JSON.parse(actions)) {
  answers[id] = [rule({id}, {isInGroup: g => g === group}), rule({id}, {isInGroup: g => g === "sudo"})];
}
console.log(JSON.stringify(answers));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is in config/deps/apt-web.txt")
def test_the_child_is_refused_and_nobody_else_is() -> None:
    refused = [f"{prefix}some-action" for prefix in REFUSED.values()] + [
        "org.freedesktop.timedate1.set-time", "org.freedesktop.timedate1.set-timezone",
        "org.freedesktop.NetworkManager.settings.modify.system", "org.freedesktop.accounts.user-administration",
        "org.freedesktop.packagekit.package-install", "org.freedesktop.systemd1.manage-units",
        "org.freedesktop.login1.chvt", "org.usbguard1.setParameter"]
    done = subprocess.run(["node", "-e", HARNESS, str(RULES), CHILD_GROUP,
                           json.dumps([*refused, *ALLOWED_TO_THE_CHILD])],
                          capture_output=True, text=True, check=True)
    answers = json.loads(done.stdout)
    assert {a: answers[a] for a in refused} == {a: ["no", None] for a in refused}
    assert {a: answers[a] for a in ALLOWED_TO_THE_CHILD} == {a: [None, None] for a in ALLOWED_TO_THE_CHILD}
