"""Peak memory of `minormodectl lists compile` on a 3M-name list (goal: <= 64 MiB).

The compiler streams (agent/filter/spill.py: sorted runs on disk, k-way merges), so its
peak should be the command's fixed cost plus a few MiB whatever the list's size. Both are
measured in the same run, each as a child process whose peak RSS the kernel reports at
exit (ru_maxrss, through a small intermediate process: see PEAK_OF_CHILD): the reference is the same command compiling an empty source
directory (the interpreter and the CLI's imports). Prints both; asserts the goal, the
progress lines on stderr, and that the list holds every generated name (a memory figure,
not a time: it does not depend on the machine's load).

Run: `.venv/bin/pytest -m bench -s tests/bench/test_bench_compile.py`
(MM_BENCH_COMPILE_NAMES=300000 for a quicker run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import dnsbench as bench

from agent.filter.hashlist import HashList

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.timeout(1200)]

NAMES = int(os.environ.get("MM_BENCH_COMPILE_NAMES", "3000000"))
GOAL_MIB = 64.0
ROOT = Path(__file__).parents[2]


# A child's peak RSS (ru_maxrss) starts from its parent's RSS at fork and survives exec:
# forked from pytest (which holds the generated names) it would report pytest's size. So
# a small interpreter starts the command and reports its children's peak on stdout.
PEAK_OF_CHILD = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def peak_mib(src: Path, out: Path) -> tuple[float, str]:
    """(peak RSS in MiB, stderr) of one `lists compile` run in a child process."""
    done = subprocess.run(
        [sys.executable, "-c", PEAK_OF_CHILD, sys.executable, "-m", "agent.cli", "lists", "compile",
         "--src", str(src), "--out", str(out), "--partial"],
        cwd=ROOT, capture_output=True, text=True, timeout=1100, check=False)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1]) / 1024, done.stderr  # ru_maxrss: KiB on Linux


def test_compile_peak_memory(tmp_path: Path) -> None:
    empty, src = tmp_path / "empty", tmp_path / "src"
    empty.mkdir()
    (src / "adult").mkdir(parents=True)
    bench.generate(src / "adult" / "list.hosts", NAMES)
    fixed, _ = peak_mib(empty, tmp_path / "out-empty")
    peak, err = peak_mib(src, tmp_path / "out")
    listed = HashList(tmp_path / "out" / "adult.mmdl")
    count = len(listed)
    listed.close()
    print(f"\n  lists compile, {NAMES:,} names: peak RSS {peak:.1f} MiB "
          f"(the command's fixed cost, an empty source: {fixed:.1f} MiB; "
          f"the list's own: {peak - fixed:.1f} MiB; goal <= {GOAL_MIB:.0f} MiB)")
    assert count == NAMES  # generated names are unique, and none lies below another
    assert "merging" in err and "names compiled" in err, "progress lines on stderr"
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []
    assert peak <= GOAL_MIB
