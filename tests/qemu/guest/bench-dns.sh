#!/bin/sh
# DNS filter qps and latency at a fixed rate (needs dnsperf: the test image has it).
here=$(dirname "$0")
exec "$MM_PYTHON" "$here/bench_dns.py"
