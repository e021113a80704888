"""The DNS filter's qps and latency, measured the same way in the guest and on the host.

A generated list (MM_BENCH_DOMAINS names, default 50,000) compiled by the real compiler,
the standalone filter (`python -m agent.filter.standalone`) in front of the Python fake
upstream, and dnsperf: the blocked and the forwarded path at full speed, then p50/p99 at
a fixed 200 qps. Prints "@@MM bench.NAME=VALUE". The comparison with dnsmasq on 1M names
is tests/bench/test_bench_dns.py (host only: the image carries no dnsmasq).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOMAINS = int(os.environ.get("MM_BENCH_DOMAINS", "50000"))
QUERIES = 20_000
SECONDS = 5
FIXED_QPS = 200


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_udp(port: int, timeout: float = 120) -> None:
    q = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x04wait\x04test\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(q, ("127.0.0.1", port))
                s.recv(512)
                return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError(f"no DNS server answered on port {port}")


def dnsperf(port: int, datafile: Path, qps: int | None = None) -> tuple[float, list[float]]:
    cmd = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(datafile), "-l", str(SECONDS),
           "-c", "4", "-q", "200", "-t", "2"]
    if qps:
        cmd += ["-Q", str(qps), "-v"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=SECONDS + 120).stdout
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(out)
    latencies = sorted(float(x) for x in re.findall(r"^> \S+ .* ([\d.]+)$", out, re.M))
    return float(m.group(1)), latencies


def pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000 if ordered else float("nan")


def main() -> None:
    from agent.filter.lists import compile_all

    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    names = [f"{''.join(rng.choices(letters, k=rng.randint(6, 14)))}{i % 997}.com" for i in range(DOMAINS)]
    procs: list[subprocess.Popen[bytes]] = []
    out = lambda name, value: print(f"@@MM bench.{name}={value:.4g}", flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="mm-bench-dns-") as tmp:
        work = Path(tmp)
        (work / "src" / "adult").mkdir(parents=True)
        (work / "src" / "adult" / "list.txt").write_text("".join(f"{n}\n" for n in names))
        t0 = time.perf_counter()
        compile_all(work / "src", work / "lists")
        out("dns_compile_per_1k_ms", (time.perf_counter() - t0) * 1000 / (DOMAINS / 1000))
        blocked = work / "blocked.txt"
        blocked.write_text("".join(f"{n} A\n" for n in rng.sample(names, min(QUERIES, DOMAINS))))
        forwarded = work / "forwarded.txt"
        forwarded.write_text("".join(f"fwd{i}.allowed-{i % 89}.example A\n" for i in range(QUERIES)))
        (work / "profile.json").write_text(json.dumps({"block_categories": ["adult"], "safesearch": False, "youtube": "off"}))
        up, port = free_port(), free_port()
        try:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "agent.filter.fakeupstream", "--listen", f"127.0.0.1:{up}"],
                stdout=subprocess.DEVNULL))
            wait_udp(up)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "agent.filter.standalone", "--lists", str(work / "lists"),
                 "--upstream", f"127.0.0.1:{up}", "--listen", f"127.0.0.1:{port}",
                 "--profile-json", str(work / "profile.json")], stderr=subprocess.DEVNULL))
            wait_udp(port)
            out("dns_blocked_qps", dnsperf(port, blocked)[0])
            out("dns_forwarded_qps", dnsperf(port, forwarded)[0])
            time.sleep(1)  # the full-speed runs' queues drain before latency is measured
            _, lat = dnsperf(port, blocked, FIXED_QPS)
            out("dns_blocked_p50_ms", pct(lat, 0.5))
            out("dns_blocked_p99_ms", pct(lat, 0.99))
            _, lat = dnsperf(port, forwarded, FIXED_QPS)
            out("dns_forwarded_p50_ms", pct(lat, 0.5))
            out("dns_forwarded_p99_ms", pct(lat, 0.99))
        finally:
            for p in procs:
                p.terminate()
                p.wait(10)


if __name__ == "__main__":
    main()
