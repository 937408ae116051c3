"""RUN_TESTS, CHECK_BUILD, FIX_TESTS on small real workspaces, run in the sandbox."""

import shlex
import shutil
import sys
import textwrap
from pathlib import Path

import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import build, reports
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, ToolError

TEST_CALC = """\
from calc import add


def test_add():
    assert add(1, 1) == 2


def test_add_wrong():
    assert add(1, 1) == 3
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def python_ws(tmp_path: Path, tests: str = TEST_CALC) -> Path:
    """A package `calc` and its pytest tests; pythonpath makes the package importable."""
    return write(tmp_path / "ws", {
        "pyproject.toml": '[tool.pytest.ini_options]\npythonpath = ["."]\n',
        "calc/__init__.py": "def add(a, b):\n    return a + b\n",
        "tests/test_calc.py": tests,
    })


def context(tmp_path: Path, ws: Path, allow_writes: bool = False, **agent) -> Context:
    c = config_lib.base()
    for key, value in agent.items():
        c.agent[key] = value
    return Context(sandbox=Sandbox(ws, c.agent, allow_writes=allow_writes), config=c, workdir=tmp_path / "work")


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_run_tests_counts_and_places_the_failure(tmp_path):
    ws = python_ws(tmp_path)
    r = build.run_tests(context(tmp_path, ws), {})
    assert r.status == FAILED
    assert (r.data["passed"], r.data["failed"], r.data["errors"]) == (1, 1, 0)
    assert r.summary.startswith("1 passed, 1 failed (pytest, ")
    assert r.data["runner"] == "pytest" and "-p no:cacheprovider" in r.data["command"]
    assert isinstance(r.data["sandbox_missing"], list)
    [item] = r.items
    assert item.text == "tests/test_calc.py::test_add_wrong: assert 2 == 3"
    assert item.path == "tests/test_calc.py"
    assert item.line == line_of(ws / "tests/test_calc.py", "add(1, 1) == 3")


def test_run_tests_all_passing_is_ok(tmp_path):
    ws = python_ws(tmp_path, TEST_CALC.replace("== 3", "== 2"))
    r = build.run_tests(context(tmp_path, ws), {})
    assert r.status == OK, r.summary
    assert (r.data["passed"], r.data["failed"]) == (2, 0) and r.items == []


def test_failure_raised_in_package_code_is_placed_there(tmp_path):
    """At the raising line in the package; the message whole (pytest's short summary cuts it)."""
    ws = python_ws(tmp_path, "from calc import parse\n\n\ndef test_parse():\n    parse('x')\n")
    write(ws, {"calc/__init__.py": "def parse(s):\n    raise ValueError(f'bad {s}: ' + 'not a number, ' * 8)\n"})
    [item] = build.run_tests(context(tmp_path, ws), {}).items
    assert (item.path, item.line) == ("calc/__init__.py", 2)
    assert item.text == "tests/test_calc.py::test_parse: ValueError: bad x: " + ("not a number, " * 8).strip()


def test_no_tests_collected_fails_clearly(tmp_path):
    ws = python_ws(tmp_path, "def helper():\n    pass\n")
    r = build.run_tests(context(tmp_path, ws), {})
    assert r.status == FAILED and r.summary.startswith("no tests collected")


def test_check_build_finds_syntax_errors(tmp_path):
    ws = write(tmp_path / "ws", {"app/main.py": "x = 1\n", "app/broken.py": "def f(:\n    pass\n"})
    r = build.check_build(context(tmp_path, ws), {})
    assert r.status == FAILED and r.data["errors"] == 1
    [item] = r.items
    assert (item.path, item.line) == ("app/broken.py", 1)
    assert "SyntaxError" in item.text and "(python, " in r.summary
    assert not list(ws.rglob("*.pyc")) and not list(ws.rglob("__pycache__"))


def test_check_build_clean_is_ok(tmp_path):
    ws = python_ws(tmp_path)
    r = build.check_build(context(tmp_path, ws), {})
    assert r.status == OK and r.items == []
    assert "checked 2 Python files" in r.summary


def test_fix_tests_reruns_only_the_failure_and_edits_nothing(tmp_path):
    ws = python_ws(tmp_path)
    before = {p: p.read_text() for p in ws.rglob("*.py")}
    r = build.fix_tests(context(tmp_path, ws), {})
    assert r.status == FAILED
    rerun = shlex.split(r.data["rerun_command"])
    assert rerun[-1] == "tests/test_calc.py::test_add_wrong"
    assert not any("test_add" == a.rsplit("::", 1)[-1] for a in rerun)
    assert r.summary.startswith("1 failing test(s) triaged (1 fail again, 0 passed on re-run")
    assert r.summary.endswith("code not edited (writes are off: --allow_writes)")
    assert r.data["edits"] == "code not edited (writes are off: --allow_writes)"
    [failure] = r.data["failures"]
    assert failure["source"] == "assert add(1, 1) == 3" and failure["rerun"] == "fails again"
    [item] = r.items
    assert (item.path, item.line) == ("tests/test_calc.py", line_of(ws / "tests/test_calc.py", "== 3"))
    assert {p: p.read_text() for p in ws.rglob("*.py")} == before


def test_fix_tests_tells_flaky_from_real_and_edits_nothing_with_writes(tmp_path):
    """The flaky test fails on its first run only (it leaves a marker in the writable workspace)."""
    flaky = """\
    from pathlib import Path


    def test_flaky():
        marker = Path(__file__).with_name("ran-once")
        first = not marker.exists()
        marker.touch()
        assert not first, "first run"


    def test_real():
        assert 1 == 2
    """
    ws = python_ws(tmp_path, textwrap.dedent(flaky))
    r = build.fix_tests(context(tmp_path, ws, allow_writes=True), {})
    verdicts = {f["test"].rsplit("::", 1)[-1]: f["rerun"] for f in r.data["failures"]}
    assert verdicts == {"test_flaky": "passed on re-run (flaky)", "test_real": "fails again"}
    assert "1 fail again, 1 passed on re-run" in r.summary
    assert r.summary.endswith("code not edited: FIX_TESTS triages only")


def test_no_recognisable_tests_is_a_tool_error(tmp_path):
    ws = write(tmp_path / "ws", {"README.md": "# notes\n"})
    with pytest.raises(ToolError, match="test_command"):
        build.run_tests(context(tmp_path, ws), {})
    with pytest.raises(ToolError, match="build_command"):
        build.check_build(context(tmp_path, ws), {})


def test_configured_command_overrides_detection(tmp_path):
    ws = python_ws(tmp_path)
    ok = context(tmp_path, ws, test_command=f'{shlex.quote(sys.executable)} -c "print(1)"')
    r = build.run_tests(ok, {})
    assert r.status == OK and r.data["command"] == shlex.join([sys.executable, "-c", "print(1)"])
    assert r.summary.startswith("passed (exit 0; no test counts in the output)")
    bad = context(tmp_path, ws, build_command=f'{shlex.quote(sys.executable)} -c "raise SystemExit(3)"')
    r = build.check_build(bad, {})
    assert r.status == FAILED and r.data["returncode"] == 3


def test_missing_program_is_an_error_naming_it(tmp_path):
    ws = python_ws(tmp_path)
    r = build.run_tests(context(tmp_path, ws, test_command="no-such-runner-xyz --all"), {})
    assert r.status == ERROR and r.summary.startswith("no-such-runner-xyz is not installed")


def test_workspace_venv_without_pytest_is_an_error(tmp_path):
    """The workspace's .venv/bin/python runs its tests; here one that has no pytest."""
    ws = python_ws(tmp_path)
    write(ws, {".venv/bin/python": '#!/bin/sh\necho "$0: No module named pytest" >&2\nexit 1\n'})
    (ws / ".venv/bin/python").chmod(0o755)
    r = build.run_tests(context(tmp_path, ws), {})
    assert r.status == ERROR and r.data["command"].startswith(str(ws.resolve() / ".venv/bin/python"))
    assert r.summary.startswith("pytest is not installed for ") and "test_command" in r.summary


def test_writing_to_the_read_only_workspace_is_an_error(tmp_path):
    ws = python_ws(tmp_path)
    ctx = context(tmp_path, ws, test_command=f"{shlex.quote(sys.executable)} -c \"open('out.txt', 'w')\"")
    if not ctx.sandbox.bubblewrap:
        pytest.skip("only bubblewrap makes the workspace a read-only file system")
    r = build.run_tests(ctx, {})
    assert r.status == ERROR and "read-only without --allow_writes" in r.summary
    assert not (ws / "out.txt").exists()


def test_hanging_tests_time_out(tmp_path):
    ws = python_ws(tmp_path, "import time\n\n\ndef test_hangs():\n    time.sleep(60)\n")
    r = build.run_tests(context(tmp_path, ws, timeout_s=2.0, kill_grace_s=0.5), {})
    assert r.status == ERROR and "timed out after 2 s" in r.summary
    assert r.data["failed"] is None


def test_go_test_output_is_parsed(tmp_path):
    """go is not needed: the parser reads go test -v output of a module with a subpackage."""
    ws = write(tmp_path / "ws", {"go.mod": "module example.com/m\n", "calc/calc_test.go": "package calc\n",
                                 "old/calc/calc_test.go": "package calc\n"})
    output = textwrap.dedent("""\
        === RUN   TestAdd
        --- PASS: TestAdd (0.00s)
        === RUN   TestSub
            calc_test.go:12: got 1, want 2
        --- FAIL: TestSub (0.00s)
        === RUN   TestSkip
            calc_test.go:20: later
        --- SKIP: TestSkip (0.00s)
        FAIL
        FAIL\texample.com/m/calc\t0.002s
        """)
    report = reports.parse_go_test(output, ws)
    assert (report.passed, report.failed, report.skipped) == (1, 1, 1)
    [f] = report.failures
    assert (f.test, f.message, f.path, f.line) == ("TestSub", "got 1, want 2", "calc/calc_test.go", 12)
    nothing = reports.parse_go_test("?   \texample.com/m\t[no test files]\n", ws)
    assert nothing.runner == "go" and nothing.total == 0
    vet = "# example.com/m/calc\ncalc/calc_test.go:3:2: unreachable code\n"
    [e] = reports.parse_build(vet, ws)[0]
    assert (e.path, e.line) == ("calc/calc_test.go", 3)
    assert build._rerun(build.Command("go", ["go", "test", "-v", "./..."], "go"), ["TestSub"]).argv == \
        ["go", "test", "-run", "^(TestSub)$", "-v", "./..."]


CARGO_LIB = """\
pub fn add(a: i32, b: i32) -> i32 {
    a + b
}

#[cfg(test)]
mod tests {
    #[test]
    fn adds() {
        assert_eq!(super::add(1, 1), 2);
    }

    #[test]
    fn adds_wrong() {
        assert_eq!(super::add(1, 1), 3);
    }
}
"""


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_cargo_crate(tmp_path):
    """Offline, no dependencies; Cargo.lock is there because cargo would write it otherwise."""
    ws = write(tmp_path / "ws", {
        "Cargo.toml": '[package]\nname = "mini"\nversion = "0.1.0"\nedition = "2021"\n',
        "Cargo.lock": '# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n'
                      'version = 3\n\n[[package]]\nname = "mini"\nversion = "0.1.0"\n',
        "src/lib.rs": CARGO_LIB,
    })
    ctx = context(tmp_path, ws)
    r = build.fix_tests(ctx, {})
    assert r.status == FAILED, r.summary + r.excerpt
    assert (r.data["passed"], r.data["failed"]) == (1, 1)
    [item] = r.items
    assert (item.path, item.line) == ("src/lib.rs", line_of(ws / "src/lib.rs", "add(1, 1), 3"))
    assert item.text.startswith("tests::adds_wrong: assertion `left == right` failed")
    assert shlex.split(r.data["rerun_command"])[-3:] == ["--", "--exact", "tests::adds_wrong"]
    assert r.data["failures"][0]["rerun"] == "fails again"
    write(ws, {"src/lib.rs": CARGO_LIB.replace("a + b", "a + c")})
    for r in build.check_build(ctx, {}), build.run_tests(ctx, {}):  # short and human error formats
        assert r.status == FAILED and [(i.path, i.line) for i in r.items] == [("src/lib.rs", 2)]
        assert "error[E0425]" in r.items[0].text
