"""Exec latency through the exec gate, timed the same way in the guest and on the host.

Three private tmpfs mounts (this script mounts and marks them; never "/") hold the same
tagged copy of /bin/true: one unmarked (no gate), two behind the supervised gate process
the agent runs, one with the kernel cache off (every exec wakes the gate: a first exec)
and one with ignore marks (cached). uid 65534 spawns them round-robin so all see the same
noise. Prints "@@MM bench.NAME=VALUE": medians in µs and the ratios to no gate (the
issue's goals: cached <= 1.05, first exec <= 1.5). The thorough host version, with p99
and the in-thread gate, is tests/bench/test_bench_execgate.py.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path

CHILD_UID = 65534
EXECS = int(os.environ.get("MM_BENCH_EXECS", "300"))
WARMUP = 20
# the driver runs as uid 65534, which may not reach this venv's interpreter (e.g. under /root)
DRIVER_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
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


@contextmanager
def private_tmpfs() -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="mm-bench-gate-"))
    where.chmod(0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755,size=16m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def tiny_program(fs: Path) -> str:
    exe = fs / "tiny"
    shutil.copyfile("/bin/true", exe)
    with exe.open("ab") as f:
        f.write(b"\0minormode-bench")  # same bytes in every variant, unlike /bin/true's
    exe.chmod(0o755)
    return str(exe)


def measure(exes: list[str]) -> list[list[int]]:
    """Exec latencies (ns) per program, spawned round-robin by the child's stand-in uid."""
    result = subprocess.run(
        [DRIVER_PYTHON, "-c", DRIVER, str(EXECS), str(WARMUP), *exes],
        user=CHILD_UID, group=CHILD_UID, extra_groups=[], capture_output=True, text=True,
        timeout=1200, check=True, cwd="/")
    samples: list[list[int]] = json.loads(result.stdout)
    return samples


def main() -> None:
    from agent.core.decide import decide
    from agent.core.parse import default_policy
    from agent.core.policy import AgeBand
    from agent.core.usage import Usage
    from agent.execgate.supervisor import GateSupervisor
    from agent.execgate.table import GateConfig, build_table

    access = decide(default_policy(AgeBand.AGE_8_12), datetime(2026, 11, 23, 10, tzinfo=UTC), Usage()).apps
    variants = ("none", "uncached", "cached")
    with ExitStack() as stack:
        exes = []
        for variant in variants:
            fs = stack.enter_context(private_tmpfs())
            exe = tiny_program(fs)
            exes.append(exe)
            if variant == "none":
                continue
            config = GateConfig(also_restricted=frozenset({CHILD_UID}), base_paths=(exe,))
            table = build_table({}, access, config, 1)
            gate = GateSupervisor([str(fs)], table, gate_args=[] if variant == "cached" else ["--no-cache"])
            gate.start()
            stack.callback(gate.stop)
        medians = {v: statistics.median(s) / 1000 for v, s in zip(variants, measure(exes), strict=True)}
    out = lambda name, value: print(f"@@MM bench.{name}={value:.4g}", flush=True)  # noqa: E731
    out("exec_us", medians["none"])
    out("execgate_first_ratio", medians["uncached"] / medians["none"])
    out("execgate_cached_ratio", medians["cached"] / medians["none"])


if __name__ == "__main__":
    main()
