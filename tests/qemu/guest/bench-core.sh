#!/bin/sh
# Benchmark hook (run in the guest by run-guest-tests and on the host by tests/qemu):
# prints "@@MM bench.NAME=VALUE" lines. $MM_PYTHON is the interpreter with the agent.
# Each later enforcement part adds its own bench-*.sh here (exec gate, DNS filter).
here=$(dirname "$0")
exec "$MM_PYTHON" "$here/bench_core.py"
