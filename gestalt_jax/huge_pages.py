"""Transparent huge pages for glibc's malloc (config.huge_pages).

On CPU, XLA allocates every step's buffers afresh. With 4 KB pages the kernel faulted in and
zeroed about 57,000 pages a step, and a small-tier brain step took 186 ms instead of 116
(BENCHMARKS.md). glibc asks for huge pages when GLIBC_TUNABLES holds `glibc.malloc.hugetlb=1`,
and it reads that only when a process starts: so a process that wants them runs itself again.
"""

from __future__ import annotations

import os
import platform
import sys

TUNABLE = "glibc.malloc.hugetlb=1"


def rerun() -> None:
    """Exec this process's command line (`sys.orig_argv`: the interpreter's own options, then
    `-m module`, a script or a console script, then the arguments) again, same process id, with
    the tunable added to the environment; return at once where it is set already or where the C
    library is not glibc on Linux (then nothing changes)."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if sys.platform != "linux" or platform.libc_ver()[0] != "glibc" or TUNABLE in tunables:
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, [tunables, TUNABLE])))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
