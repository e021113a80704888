"""Exec latency with and without the exec gate (printed as ratios, never asserted on time).

Five private tmpfs mounts hold the same tiny program (a tagged copy of /bin/true): one
unmarked (no gate); then the gate in a thread and the supervised gate process (what
AppGuard runs), each with the kernel cache off (every exec wakes the gate: the "first
exec" path) and with ignore marks (cached). The child's uid (65534) spawns them
round-robin with posix_spawn + waitpid, so all variants see the same machine noise.
Run: sudo .venv/bin/pytest -m bench tests/bench/test_bench_execgate.py -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "execgate"))

import gatekit

from agent.execgate.catalogue import scan
from agent.execgate.loop import ExecGate
from agent.execgate.supervisor import GateSupervisor
from agent.execgate.table import GateConfig, build_table

pytestmark = [
    pytest.mark.bench,
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: mounts a tmpfs and marks it"),
    pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="needs /usr/bin/python3"),
]

N = int(os.environ.get("MM_BENCH_EXECS", "3000"))
WARMUP = 100
DRIVER = """
import os, sys, time, json
n, warm, exes = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
out = [[] for _ in exes]
for i in range(n + warm):
    for k, exe in enumerate(exes):
        t = time.perf_counter_ns()
        pid = os.posix_spawn(exe, [exe], {})
        os.waitpid(pid, 0)
        if i >= warm:
            out[k].append(time.perf_counter_ns() - t)
print(json.dumps(out))
"""
ALL_VARIANTS = ("no gate", "thread uncached", "thread cached", "process uncached", "process cached")
# MM_BENCH_VARIANTS="no gate,thread cached" runs a subset ("no gate" always runs).
_CHOSEN = os.environ.get("MM_BENCH_VARIANTS", ",".join(ALL_VARIANTS)).split(",")
VARIANTS = ("no gate", *(v for v in ALL_VARIANTS[1:] if v in _CHOSEN))


def _measure(exes: list[str]) -> list[list[int]]:
    result = subprocess.run(
        ["/usr/bin/python3", "-c", DRIVER, str(N), str(WARMUP), *exes],
        user=gatekit.CHILD_UID,
        group=gatekit.CHILD_UID,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        cwd="/",
    )
    return json.loads(result.stdout)


def _p99(values: list[int]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_bench_exec_latency_with_the_gate() -> None:
    with ExitStack() as stack:
        exes, gates = [], []
        for variant in VARIANTS:
            fs = stack.enter_context(gatekit.private_tmpfs())
            exe = gatekit.make_binary(fs / "apps" / "tiny", tag="bench")  # same bytes in all
            exes.append(str(exe))
            if variant == "no gate":
                continue
            gatekit.write_desktop(fs / "share", "org.example.Tiny", "Tiny", exe)
            apps = scan([str(fs / "share")]).apps
            config = GateConfig(
                also_restricted=frozenset({gatekit.CHILD_UID}), child_writable=(f"{fs}/home/",)
            )
            table = build_table(apps, gatekit.access(allowed=["org.example.Tiny"]), config, 1)
            cache = variant.endswith(" cached")
            if variant.startswith("thread"):  # the thread runner
                gate = ExecGate([str(fs)], table, cache=cache)
                gate.start()
                stack.callback(gate.stop)
                gates.append(gate)
            else:  # the supervised gate process AppGuard runs
                sup = GateSupervisor([str(fs)], table, gate_args=[] if cache else ["--no-cache"])
                sup.start()
                stack.callback(sup.stop)
        samples = dict(zip(VARIANTS, _measure(exes), strict=True))
        for gate in gates:
            if gate.cache:
                assert gate.stats.events == 1, "only the first cached exec may wake the gate"
            else:
                assert gate.stats.events == N + WARMUP, "every uncached exec must wake the gate"
    base_med = statistics.median(samples["no gate"])
    base_p99 = _p99(samples["no gate"])
    print(f"\nexec latency, tiny binary, uid 65534, {N} execs per variant, round-robin")
    print(f"{'variant':16} {'median us':>10} {'p99 us':>9} {'median ratio':>13} {'p99 ratio':>10}")
    for label, values in samples.items():
        med, p99 = statistics.median(values), _p99(values)
        print(
            f"{label:16} {med / 1000:10.1f} {p99 / 1000:9.1f} {med / base_med:13.3f} {p99 / base_p99:10.3f}"
        )
