"""`gestalt run --plan`: plans a user writes, run through the real command on a real git workspace."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent import executor
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools.base import Context

GIT = ["git", "-c", "user.email=dev@example.com", "-c", "user.name=dev"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository: a Python package with one passing and one failing test, a README with a
    broken link, and a symlink that points out of it."""
    root = tmp_path_factory.mktemp("repo")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "credentials.txt").write_text("token=hunter2\n")
    files = {
        "pkg/__init__.py": "",
        "pkg/config.py": "def parse_config(path):\n    return dict(path=path)\n",
        "tests/test_config.py": textwrap.dedent("""\
            from pkg.config import parse_config


            def test_parse_keeps_the_path():
                assert parse_config("a.toml")["path"] == "a.toml"


            def test_parse_reads_the_file():
                assert parse_config("a.toml") == {"path": "a.toml", "debug": False}
            """),
        "README.md": "# pkg\n\nSee [the guide](docs/guide.md) and [usage](#usage).\n\n## Usage\n\nCall it.\n",
        "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = [\"tests\"]\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "leak").symlink_to(outside / "credentials.txt")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=root, check=True)
    subprocess.run(GIT + ["commit", "-qm", "init"], cwd=root, check=True)
    return root


def _gestalt_run(repo, tmp_path, plan, *flags, stdin=None):
    plan_arg = "-" if stdin is not None else str(_write(tmp_path / "plan.json", plan))
    argv = [sys.executable, "-m", "gestalt_jax.main", "run", "--config=configs/test.py",
            f"--workdir={tmp_path / 'work'}", f"--workspace={repo}", f"--plan={plan_arg}", *flags]
    return subprocess.run(argv, cwd=config_lib.REPO_ROOT, input=stdin, capture_output=True, text=True, timeout=300)


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_plans_search_open_test_lint_and_refuse_the_symlink(repo, tmp_path):
    plan = [{"tool": "SEARCH", "args": {"pattern": "def parse_config"}},
            {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 1}}},
            {"tool": "RUN_TESTS", "args": {}},
            {"tool": "DOCS_LINT", "args": {}},
            {"tool": "READ_FILE", "args": {"path": "leak"}},
            {"tool": "LIST_FILES", "args": {}}]
    done = _gestalt_run(repo, tmp_path, plan, "--json")
    assert done.returncode == 1, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["stopped_at"] == 5 and not out["ok"] and len(out["steps"]) == 5
    search, read, tests, lint, leak = out["steps"]
    assert search["items"][0]["path"] == "pkg/config.py" and search["items"][0]["line"] == 1
    assert read["args"] == {"path": "pkg/config.py"}
    assert any("def parse_config(path):" in item["text"] for item in read["items"])
    assert tests["status"] == "failed"
    assert (tests["data"]["passed"], tests["data"]["failed"]) == (1, 1)
    failing = tests["items"][0]
    assert failing["path"] == "tests/test_config.py" and failing["line"] == 9
    assert "test_parse_reads_the_file" in failing["text"]
    assert lint["status"] == "failed" and any("docs/guide.md" in i["text"] for i in lint["items"])
    assert not any("#usage" in i["text"] for i in lint["items"])
    assert leak["status"] == "error" and "'leak'" in leak["summary"] and "out of the workspace" in leak["summary"]
    assert "hunter2" not in done.stdout


def test_the_console_report_and_a_plan_from_stdin(repo, tmp_path):
    plan = [{"tool": "LIST_FILES", "args": {}}, {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 1}}}]
    done = _gestalt_run(repo, tmp_path, None, stdin=json.dumps(plan))
    assert done.returncode == 0, done.stderr
    assert "[1/2] LIST_FILES -> ok" in done.stdout
    assert "[2/2] READ_FILE path='.gitignore'" in done.stdout or "[2/2] READ_FILE path='README.md'" in done.stdout


@pytest.mark.parametrize("plan, message", [
    ("[{\"tool\": \"SEARCH\"", "plan.json:1:"),
    ([{"tool": "DELETE_ALL"}], "step 1: unknown tool 'DELETE_ALL'"),
    ([{"tool": "SEARCH", "args": {"path": "x"}}], "step 1: SEARCH takes no argument 'path'"),
    ([{"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 1}}}], "step 1: args.path: 'from' must name an earlier step"),
    ([{"tool": "LIST_FILES"}, {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 0}}}], "step 2: args.path: 'pick'"),
])
def test_a_bad_plan_is_refused_before_anything_runs(repo, tmp_path, plan, message):
    if isinstance(plan, str):
        (tmp_path / "plan.json").write_text(plan)
        plan_arg = tmp_path / "plan.json"
        argv = [sys.executable, "-m", "gestalt_jax.main", "run", "--config=configs/test.py",
                f"--workspace={repo}", f"--plan={plan_arg}"]
        done = subprocess.run(argv, cwd=config_lib.REPO_ROOT, capture_output=True, text=True, timeout=300)
    else:
        done = _gestalt_run(repo, tmp_path, plan)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr


def _ctx(repo, tmp_path, **kw):
    c = config_lib.load_tier("test")
    return Context(Sandbox(repo, c.agent, **kw), c, tmp_path / "work", config_file="configs/test.py")


def test_a_pick_beyond_the_results_stops_the_plan(repo, tmp_path):
    steps = executor.parse_plan(json.dumps([{"tool": "SEARCH", "args": {"pattern": "parse_config"}},
                                            {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 16}}},
                                            {"tool": "LIST_FILES"}]), "plan")
    done = executor.run_plan(_ctx(repo, tmp_path), steps)
    assert [r.status for _, r in done] == ["ok", "error"]
    assert "PICK 16" in done[1][1].summary


def test_hostile_arguments_are_data_not_commands(repo, tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    hostile = [f"; rm -rf {sentinel}", f"$(rm -rf {sentinel})", f"`rm -rf {sentinel}`", f"x\nrm -rf {sentinel}",
               "--pre=sh", "-e", "--files"]
    steps = [{"tool": "SEARCH", "args": {"pattern": p}} for p in hostile]
    steps += [{"tool": "PROVE_ALGEBRA", "args": {"lhs": f"__import__('os').system('rm -rf {sentinel}')", "rhs": "0"}},
              {"tool": "MEMORY_ADD", "args": {"text": "'); DROP TABLE facts; --"}},
              {"tool": "MEMORY_SEARCH", "args": {"text": "DROP TABLE facts\" OR *"}}]
    ctx = _ctx(repo, tmp_path)
    for step in steps:
        (_, result), = executor.run_plan(ctx, [step])
        assert result.status in ("ok", "error"), (step, result)
        if step["tool"] == "SEARCH" and "\n" in step["args"]["pattern"]:
            assert result.status == "error" and "line breaks" in result.summary
        elif step["tool"] == "SEARCH":
            assert result.status == "ok" and result.items == [], (step, result.summary)
    assert sentinel.is_dir()
    memory = executor.run_plan(ctx, [{"tool": "MEMORY_SEARCH", "args": {"text": "DROP TABLE"}}])[0][1]
    assert memory.items and "DROP TABLE" in memory.items[0].text


def test_meta_tools_and_writes_need_the_users_consent(repo, tmp_path):
    for tool in ("EVAL", "TRAIN"):
        (_, result), = executor.run_plan(_ctx(repo, tmp_path), [{"tool": tool, "args": {}}])
        assert result.status == "error" and "--allow_meta" in result.summary
    before = {p: p.stat().st_mtime_ns for p in repo.rglob("*") if ".git" not in p.parts}
    executor.run_plan(_ctx(repo, tmp_path), [{"tool": "RUN_TESTS", "args": {}}, {"tool": "FIX_TESTS", "args": {}}])
    after = {p: p.stat().st_mtime_ns for p in repo.rglob("*") if ".git" not in p.parts}
    assert before == after  # nothing in the workspace was written: no caches, no bytecode, no edits


def test_eval_runs_gestalt_itself_in_the_sandbox_when_allowed(repo, tmp_path):
    (_, result), = executor.run_plan(_ctx(repo, tmp_path, allow_meta=True), [{"tool": "EVAL", "args": {}}])
    # Nothing is trained in this workdir: the real `gestalt eval` ran and said so.
    assert result.status == "failed"
    assert f"no trained brain in {tmp_path / 'work' / 'checkpoints' / 'sft'}" in result.summary
