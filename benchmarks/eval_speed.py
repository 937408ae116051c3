"""Wall and CPU time and XLA compilations of `gestalt eval` (or `gallery`) on a trained workdir.

    python benchmarks/eval_speed.py --workdir=/tmp/evalbench --code=/work/infer --out=/tmp/eval_after

Runs `python -m gestalt_jax.main <command> --config=<config> --workdir=<workdir>` with the
gestalt_jax of `--code` first on PYTHONPATH and JAX_LOG_COMPILES=1, then prints the wall time,
the goal benches' and the talk metrics' own `seconds` (workdir/eval/goals.json, talk.json) and
how many times each function was compiled, and copies workdir/eval (and gallery.md) to `--out`,
so two code versions can be compared on one workdir (`diff -r` of the two outputs, `seconds`
aside). The machine's other load counts in every number: run nothing else meanwhile.
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained workdir (gestalt train).", required=True)
_CODE = flags.DEFINE_string("code", str(Path(__file__).resolve().parents[1]), "Checkout whose gestalt_jax runs.")
_CONFIG = flags.DEFINE_string("config", "configs/small.py", "Tier config, relative to --code.")
_COMMAND = flags.DEFINE_enum("command", "eval", ["eval", "gallery"], "What to time.")
_OUT = flags.DEFINE_string("out", None, "Where workdir/eval (and gallery.md) are copied.", required=True)

# jax logs one line per compiled program: "Finished XLA compilation of jit(name) in 1.2 sec".
_COMPILED = re.compile(r"Finished XLA compilation of (\S+) in ([0-9.]+) sec")


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes: less sensitive to the machine's
    other load than wall time, though that load still slows every cache and core."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv):
    del argv
    from gestalt_jax import huge_pages
    huge_pages.rerun()  # timed as `gestalt` runs (config.huge_pages)
    code, workdir, out = Path(_CODE.value), Path(_WORKDIR.value), Path(_OUT.value)
    env = dict(os.environ, PYTHONPATH=str(code), JAX_LOG_COMPILES="1")
    cmd = [sys.executable, "-m", "gestalt_jax.main", _COMMAND.value, f"--config={code / _CONFIG.value}",
           f"--workdir={workdir}"]
    load = os.getloadavg()[0]
    t, cpu = time.time(), _children_cpu()
    run = subprocess.run(cmd, env=env, cwd=code, capture_output=True, text=True)
    wall, cpu = time.time() - t, _children_cpu() - cpu
    out.mkdir(parents=True, exist_ok=True)
    (out / "stdout.txt").write_text(run.stdout)
    (out / "stderr.txt").write_text(run.stderr)
    if run.returncode:
        sys.exit(f"{' '.join(cmd)} failed ({run.returncode}); see {out / 'stderr.txt'}")
    counts, seconds = collections.Counter(), collections.Counter()
    for name, s in _COMPILED.findall(run.stderr):
        counts[name] += 1
        seconds[name] += float(s)
    print(f"{' '.join(cmd)}: {wall:.1f} s wall, {cpu:.1f} s CPU; load average before: {load:.2f}")
    if _COMMAND.value == "eval":
        shutil.copytree(workdir / "eval", out / "eval", dirs_exist_ok=True)
        for name in ("goals", "talk"):
            path = workdir / "eval" / f"{name}.json"
            if path.exists():
                result = json.loads(path.read_text())
                per = {k: v["seconds"] for k, v in result.items()} if name == "goals" else result["seconds"]
                print(f"{name} seconds: {per}")
    else:
        shutil.copy(workdir / "gallery.md", out / "gallery.md")
    print(f"{sum(counts.values())} compilations, {sum(seconds.values()):.1f} s compiling; the functions "
          f"compiled more than once or for over a second:")
    for name, n in counts.most_common():
        if n > 1 or seconds[name] > 1:
            print(f"  {n:3d} x {name} ({seconds[name]:.1f} s)")


if __name__ == "__main__":
    app.run(main)
