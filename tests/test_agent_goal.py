"""`gestalt run "<goal>"` end to end: the real command on the shared trained test tier, in a git
repository the test writes. The test tier's plans are not meant to be right; what is checked is
what every run guarantees: the schema of --json, a plan that parses and runs in the sandbox, the
answer built from the results, and episodes remembered across processes."""

import json
import subprocess
import sys

import jsonschema
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import memory as memory_lib
from gestalt_jax.agent import run_goal

GIT = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    (root / "pkg").mkdir()
    (root / "pkg" / "config.py").write_text("def parse_config(path):\n    return dict(path=path)\n")
    (root / "README.md").write_text("# pkg\n\nSee [the guide](docs/guide.md).\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-qm", "init"], cwd=root, check=True)
    return root


def _run(workdir, repo, memory, *args, stdin=None):
    argv = [sys.executable, "-m", "gestalt_jax.main", "run", "--config=configs/test.py", f"--workdir={workdir}",
            f"--workspace={repo}", f"--config.agent.memory_file={memory}", *args]
    return subprocess.run(argv, cwd=config_lib.REPO_ROOT, input=stdin, capture_output=True, text=True, timeout=600)


def _json(done) -> dict:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_a_goal_runs_end_to_end_and_is_recalled_by_a_later_process(trained_workdir, repo, tmp_path):
    memory = tmp_path / "memory.sqlite"
    goal = "search for parse_config and then open it"
    first = _run(trained_workdir, repo, memory, goal, "--json")
    out = _json(first)
    jsonschema.validate(out, run_goal.schema())
    assert out["goal"] == goal and out["plan"] and out["episode_id"] == 1 and out["memory_ids"] == []
    assert out["agree"] == (out["policy_actions"] == [s["tool"] for s in out["plan"]])
    assert [s["tool"] for s in out["steps"]] == [s["tool"] for s in out["plan"]][:len(out["steps"])]
    assert first.returncode == (1 if any(s["status"] == "error" for s in out["steps"]) else 0)
    for step in out["steps"]:
        if step["status"] != "error":
            assert step["output"].splitlines()[0] in out["response"]  # the answer quotes the results
    # A new process recalls the episode (keywords and, from the same brain, the concept).
    second = _json(_run(trained_workdir, repo, memory, goal, "--json"))
    jsonschema.validate(second, run_goal.schema())
    assert 1 in second["memory_ids"] and second["episode_id"] in (1, 2)
    listed = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "memory", "search", "parse_config",
                             "--config=configs/test.py", f"--workdir={trained_workdir}",
                             f"--config.agent.memory_file={memory}"],
                            cwd=config_lib.REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    hits = [line for line in listed.stdout.splitlines() if line.startswith("#")]
    assert hits[0].startswith("#1 ") and goal in hits[0]


def test_dry_run_plans_without_running_or_remembering(trained_workdir, repo, tmp_path):
    out = _json(_run(trained_workdir, repo, tmp_path / "memory.sqlite", "run the tests", "--dry_run", "--json"))
    jsonschema.validate(out, run_goal.schema())
    assert out["dry_run"] and out["steps"] == [] and out["episode_id"] is None
    assert out["response"].startswith("Planned (not run: --dry_run): ")
    assert memory_lib.MemoryStore.from_config(tmp_path, config_lib.base().agent).count() == 0


def test_the_session_runs_goals_and_commands_from_stdin(trained_workdir, repo, tmp_path):
    lines = "/plan check the docs\nhello there\n/history\n/memory\n/clear\n/history\n/quit\n"
    done = _run(trained_workdir, repo, tmp_path / "memory.sqlite", stdin=lines)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    out = done.stdout
    assert "Planned (not run: --dry_run):" in out
    assert "remembered as episode #1" in out
    assert "1. hello there  ->" in out and "#1  hello there" in out
    assert "(no turns yet in this session)" in out


def test_an_untrained_workdir_names_each_missing_component(repo, tmp_path):
    done = _run(tmp_path, repo, tmp_path / "memory.sqlite", "run the tests")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for component, phases in (("brain", "tokenizer,brain"), ("planner", "planner"), ("policy", "policy")):
        assert f"no trained {component} in {tmp_path}" in done.stderr
        assert f"gestalt train --phases={phases}" in done.stderr
