"""Latency of `gestalt run`: from a goal to the first tool's start and to the final answer, cold
(compiles included) and warm, in one process and across processes.

    python benchmarks/run_latency.py --config=configs/small.py --workdir=runs/small

One process per cache state, each loading the agent and running GOALS in order on a small git
workspace the script writes: with an empty XLA compilation cache (cold: every function compiles),
then again with the cache that run filled (a new process: compiled programs load from disk).
Within a process the first goal of each kind pays for compiling, later goals reuse the compiled
functions. Prints one markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

_CONFIG = flags.DEFINE_string("config", "configs/small.py", "Tier config the workdir was trained with.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir trained with --config.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run the goals in this process with this cache dir.")

GOALS = ("search for parse_config and then open it", "run the tests", "check the docs",
         "remember that the deploy key rotates on fridays", "what did I say about the deploy key?",
         "search for main and then open it", "hello there")


def _workspace(root: Path) -> Path:
    ws = root / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "config.py").write_text("def parse_config(path):\n    return dict(path=path)\n\n\ndef main():\n    pass\n")
    (ws / "tests" / "test_config.py").write_text(
        "from pkg.config import parse_config\n\n\ndef test_ok():\n    assert parse_config('a')['path'] == 'a'\n\n\n"
        "def test_bad():\n    assert parse_config('a') == {}\n")
    (ws / "README.md").write_text("# pkg\n\nSee [the guide](docs/guide.md).\n")
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "add", "-A"], cwd=ws, check=True)
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "x"], cwd=ws, check=True)
    return ws


def child(config_file: str, workdir: str, cache: str, workspace: str, memory: str) -> None:
    """Runs GOALS in this process and prints one JSON line of timings."""
    t0 = time.perf_counter()
    import jax
    jax.config.update("jax_compilation_cache_dir", cache)
    from gestalt_jax import config as config_lib
    from gestalt_jax.agent.run_goal import Agent
    from gestalt_jax.agent.sandbox import Sandbox
    c = config_lib.load_file(config_file)
    c.compile_cache = cache
    c.agent.memory_file = memory
    config_lib.validate(c)
    agent = Agent.load(c, workdir)
    loaded = time.perf_counter() - t0
    sandbox = Sandbox(workspace, c.agent)
    rows = []
    for goal in GOALS:
        start = time.perf_counter()
        first = []
        out = agent.run(goal, sandbox, on_start=lambda i, step: first.append(time.perf_counter()) if not first else None)
        end = time.perf_counter()
        rows.append(dict(goal=goal, plan=[s["tool"] for s in out["plan"]],
                         first_tool_s=round(first[0] - start, 3) if first else None, answer_s=round(end - start, 3)))
    print("TIMINGS " + json.dumps(dict(load_s=round(loaded, 2), rows=rows)), flush=True)


def main(argv):
    del argv
    if _CHILD.value:
        child(*json.loads(_CHILD.value))
        return
    from gestalt_jax import huge_pages
    huge_pages.rerun()
    workdir = _WORKDIR.value
    if not workdir:
        sys.exit("--workdir: give a workdir trained with --config")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ws, cache = _workspace(tmp), tmp / "xla"
        results = {}
        for name in ("empty cache", "cache filled by the first process"):
            args = json.dumps([str(Path(_CONFIG.value).resolve()), workdir, str(cache), str(ws), str(tmp / f"{len(results)}.sqlite")])
            done = subprocess.run([sys.executable, __file__, f"--child={args}"], capture_output=True, text=True,
                                  env=dict(os.environ))
            line = next((x for x in done.stdout.splitlines() if x.startswith("TIMINGS ")), None)
            if line is None:
                sys.exit(f"child failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
            results[name] = json.loads(line[len("TIMINGS "):])
    names = list(results)
    print(f"| goal | plan | " + " | ".join(f"{n}: first tool / answer (s)" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    print("| (loading the agent) | | " + " | ".join(f"{results[n]['load_s']}" for n in names) + " |")
    for i, goal in enumerate(GOALS):
        cells = [f"{results[n]['rows'][i]['first_tool_s']} / {results[n]['rows'][i]['answer_s']}" for n in names]
        print(f"| {goal} | {' -> '.join(results[names[0]]['rows'][i]['plan'])} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    app.run(main)
