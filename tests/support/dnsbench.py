"""DNS benchmark helpers shared by tests/bench/test_bench_dns.py (the filter vs dnsmasq)
and test_bench_dns_agent.py (the filter inside the running agent vs standalone): the
synthetic list, dnsperf runs (optionally inside a network namespace), percentiles, and
a process's RSS and CPU time from /proc."""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

TLDS = ("com", "net", "org", "info", "io", "co.uk", "de", "ru", "xyz", "top")
# The runs' sizes, the same for both benchmarks (environment variables for quicker runs).
DOMAINS = int(os.environ.get("MM_BENCH_DOMAINS", "1000000"))
QUERY_NAMES = 100_000
HOT_NAMES = 5_000
RUN_SECONDS = int(os.environ.get("MM_BENCH_SECONDS", "4"))
ROUNDS = int(os.environ.get("MM_BENCH_ROUNDS", "2"))
FIXED_QPS = 2000


def cpus() -> tuple[str, str]:
    """(clients' CPU, servers' CPU): the first and the last."""
    n = os.cpu_count() or 1
    return "0", str(n - 1)


def generate(path: Path, count: int) -> list[str]:
    """`count` synthetic names written as a hosts file; returns them."""
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    names = []
    for i in range(count):
        label = "".join(rng.choices(letters, k=rng.randint(6, 14)))
        sub = "www." if i % 3 == 0 else ""
        names.append(f"{sub}{label}{i % 997}.{TLDS[i % len(TLDS)]}")
    with open(path, "w") as fh:
        fh.writelines(f"0.0.0.0 {n}\n" for n in names)
    return names


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, datafile: Path, seconds: int, qps: int | None = None,
            verbose: bool = False, prefix: Sequence[str] = ()) -> tuple[float, list[float], str]:
    """One dnsperf run on the clients' CPU (`prefix`: e.g. `ip netns exec NS`): qps, the
    latencies (verbose) and the sent/completed/lost summary."""
    cpu, _ = cpus()
    cmd = [*prefix, "taskset", "-c", cpu, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d",
           str(datafile), "-l", str(seconds), "-c", "4", "-q", "200", "-t", "2"]
    if qps:
        cmd += ["-Q", str(qps)]
    if verbose:
        cmd.append("-v")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    m = re.search(r"Queries per second:\s+([\d.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    lat = [float(x) for x in re.findall(r"^> \S+ .* ([\d.]+)$", out.stdout, re.M)] if verbose \
        else []
    summary = " ".join(re.findall(r"Queries (?:sent|completed|lost):\s+\S+", out.stdout))
    return float(m.group(1)), lat, summary


def completed(summary: str) -> int:
    """The completed queries of a dnsperf summary."""
    m = re.search(r"Queries completed:\s+(\d+)", summary)
    assert m, summary
    return int(m.group(1))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]
