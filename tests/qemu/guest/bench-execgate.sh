#!/bin/sh
# Exec latency through the exec gate (root: mounts and marks its own tmpfs, never "/").
here=$(dirname "$0")
exec "$MM_PYTHON" "$here/bench_execgate.py"
