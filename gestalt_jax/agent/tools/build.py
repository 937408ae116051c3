"""RUN_TESTS, CHECK_BUILD, FIX_TESTS: the workspace's own tests and build, run in the sandbox.

The command is config.agent.test_command / build_command when set, else found from the
workspace's files, first match wins: pytest, cargo, npm, go, make, and for the build any Python
code. Its output is read into counts and failures with file:line (reports.py), so that a
later step can open the failing line; the raw output stays in the excerpt. Commands get no
shell: an argv list, run by Sandbox.run, read-only workspace unless --allow_writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

from gestalt_jax.agent import sandbox as sandbox_lib
from gestalt_jax.agent.tools import reports
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, Item, Result, ToolError

# The build check for Python code: compiles every .py file in memory (compileall and py_compile
# would write .pyc files into a workspace that is read-only) and prints each error as
# "path:line: SyntaxError: message". argv[1:] are the directory names to skip.
PYTHON_CHECK = r"""
import os, sys, warnings
warnings.simplefilter("ignore")
skip, checked, bad = set(sys.argv[1:]), 0, 0
for top, dirs, files in os.walk("."):
    dirs[:] = sorted(d for d in dirs if not (d.startswith(".") or d in skip or d.endswith(".egg")))
    for name in sorted(f for f in files if f.endswith(".py")):
        path, checked = os.path.join(top, name)[2:], checked + 1
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec", dont_inherit=True)
        except SyntaxError as e:
            bad += 1
            print(f"{path}:{e.lineno or 1}: {type(e).__name__}: {e.msg}")
        except (ValueError, OSError) as e:
            bad += 1
            print(f"{path}:1: {type(e).__name__}: {e}")
print(f"checked {checked} Python files, {bad} with errors")
sys.exit(1 if bad else 0)
"""

# Where toolchains keep themselves, relative to the user's home, for the programs that find them
# through HOME, which the sandbox points at its private temporary directory (rustup's cargo proxy
# finds no toolchain without RUSTUP_HOME). The sandbox keeps them read-only.
TOOLCHAIN_HOMES = {"cargo": (("RUSTUP_HOME", ".rustup"), ("CARGO_HOME", ".cargo")), "go": (("GOPATH", "go"),)}
# The sandbox has no network: go fails at once on a module it would download, and keeps its own
# toolchain rather than fetching the one go.mod asks for.
OFFLINE_ENV = {"go": {"GOPROXY": "off", "GOTOOLCHAIN": "local"}}
READ_ONLY = "Read-only file system"


@dataclasses.dataclass
class Command:
    """What to run: `runner` names it in summaries; `parser` (pytest, cargo, go or None) reads its
    output and re-runs single failures (None: read by exit code, no single re-runs)."""
    runner: str
    argv: list[str]
    parser: str | None = None


def _walk(root: Path):
    """Workspace-relative paths of its files, skipping reports.SKIP_DIRS and hidden ones."""
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not reports.skipped_dir(d))
        for name in files:
            yield Path(top, name).relative_to(root)


def _read(root: Path, name: str) -> str:
    path = root / name
    return path.read_text(errors="replace") if path.is_file() else ""


def _projects(root: Path):
    """(test command, build command), either None, for each kind of project the workspace is, in
    order of precedence."""
    python = root / ".venv/bin/python"
    python = str(python) if python.is_file() else sys.executable
    py_check = Command("python", [python, "-c", PYTHON_CHECK, *sorted(reports.SKIP_DIRS)])
    uses_pytest = ("[tool.pytest" in _read(root, "pyproject.toml") or (root / "pytest.ini").is_file()
                   or "[tool:pytest]" in _read(root, "setup.cfg") or "[pytest]" in _read(root, "tox.ini")
                   or any(p.name == "conftest.py" or re.fullmatch(r"test_.*\.py|.*_test\.py", p.name)
                          for p in _walk(root)))
    python_project = uses_pytest or any((root / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg"))
    yield (Command("pytest", [python, "-m", "pytest", "-q", "-rfE", "--tb=short", "-p", "no:cacheprovider"],
                   "pytest") if uses_pytest else None,
           py_check if python_project else None)
    if (root / "Cargo.toml").is_file():
        yield (Command("cargo", ["cargo", "test", "--color", "never", "--offline"], "cargo"),
               Command("cargo", ["cargo", "check", "--color", "never", "--message-format", "short", "--offline"]))
    if (root / "package.json").is_file():
        try:
            scripts = json.loads(_read(root, "package.json")).get("scripts") or {}
        except (json.JSONDecodeError, AttributeError):
            scripts = {}
        test = scripts.get("test", "")
        yield (Command("npm", ["npm", "test", "--silent"]) if test and "no test specified" not in test else None,
               Command("npm", ["npm", "run", "build"]) if scripts.get("build") else None)
    if (root / "go.mod").is_file():
        yield Command("go", ["go", "test", "-v", "./..."], "go"), Command("go", ["go", "vet", "./..."])
    makefile = next((_read(root, n) for n in ("GNUmakefile", "makefile", "Makefile") if (root / n).is_file()), "")
    targets = set(re.findall(r"^(test|build|all)\s*:(?!=)", makefile, re.M))
    yield (Command("make", ["make", "test"]) if "test" in targets else None,
           Command("make", ["make", "build" if "build" in targets else "all"]) if targets & {"build", "all"} else None)
    yield None, py_check if any(p.suffix == ".py" for p in _walk(root)) else None


def _parser_of(argv: list[str]) -> str | None:
    """Which parser reads a configured command's output: pytest, `cargo test`, `go test`."""
    names = [Path(a).name for a in argv[:3]]
    if "pytest" in names or "py.test" in names:
        return "pytest"
    return names[0] if names[0] in ("cargo", "go") and "test" in argv else None


def _command(ctx: Context, kind: str) -> Command:
    """The test ("test") or build ("build") command: configured, else found (ToolError if not)."""
    configured = ctx.agent.test_command if kind == "test" else ctx.agent.build_command
    if configured:
        try:
            argv = shlex.split(configured)
        except ValueError as e:
            raise ToolError(f"config.agent.{kind}_command {configured!r}: {e}") from None
        if not argv:
            raise ToolError(f"config.agent.{kind}_command is blank; give a command or \"\" to detect one")
        return Command(Path(argv[0]).name, argv, _parser_of(argv) if kind == "test" else None)
    for test, build in _projects(ctx.sandbox.root):
        if (found := test if kind == "test" else build) is not None:
            return found
    looked = ("pytest (pyproject.toml [tool.pytest.ini_options], pytest.ini, setup.cfg [tool:pytest], tox.ini "
              "[pytest], conftest.py, test_*.py or *_test.py files), Cargo.toml, package.json with "
              f"scripts.{kind}, go.mod, a Makefile with a {'test:' if kind == 'test' else 'build: or all:'} target"
              + ("" if kind == "test" else ", Python files"))
    raise ToolError(f"no {kind} command found in {ctx.sandbox.root}: looked for {looked}; set one with "
                    f'--config.agent.{kind}_command="..." (one argv, split like a shell, never run by one)')


def _resolve(argv: list[str], root: Path) -> tuple[list[str], dict[str, str]] | str:
    """argv with its program found, and the environment its toolchain needs; or why it cannot run.
    A path runs as given (relative ones from the workspace); a name on the sandbox's PATH runs as
    named; one only on the user's PATH (~/.cargo/bin, /usr/local/go/bin) by its absolute path."""
    sandbox_path = sandbox_lib.scrubbed_env(Path(os.devnull))["PATH"]
    if "/" in argv[0]:
        program = argv[0] if os.access(root / argv[0], os.X_OK) and (root / argv[0]).is_file() else None
    else:
        program = argv[0] if shutil.which(argv[0], path=sandbox_path) else shutil.which(argv[0])
    if program is None and "/" in argv[0]:
        return f"{argv[0]} is not an executable file (relative paths are from the workspace)"
    if program is None:
        return (f"{argv[0]} is not installed: not found on the sandbox's PATH ({sandbox_path}) nor on "
                f"PATH; install it or name it by its absolute path in config.agent.test_command/build_command")
    name = Path(program).name
    env = dict(OFFLINE_ENV.get(name, {}))
    for var, default in TOOLCHAIN_HOMES.get(name, ()):
        home = os.environ.get(var) or str(Path.home() / default)
        if Path(home).is_dir():
            env[var] = home
    return [program, *argv[1:]], env


def _execute(ctx: Context, tool: str, cmd: Command):
    """(completed process, data) of `cmd` in the sandbox, or an ERROR Result when it could not run
    (program missing, did not start, timed out)."""
    shown = ["<build.PYTHON_CHECK>" if a == PYTHON_CHECK else a for a in cmd.argv]
    data = dict(command=shlex.join(shown), runner=cmd.runner, returncode=None,
                sandbox_missing=ctx.sandbox.missing())
    resolved = _resolve(cmd.argv, ctx.sandbox.root)
    if isinstance(resolved, str):
        return Result(tool, ERROR, resolved, data=data)
    argv, env = resolved
    done = ctx.sandbox.run(argv, timeout_s=ctx.agent.timeout_s, env=env)
    data.update(returncode=done.returncode, seconds=round(done.seconds, 2))
    excerpt = ctx.excerpt(done.output)
    if done.timed_out:
        return Result(tool, ERROR, f"{cmd.runner} timed out after {ctx.agent.timeout_s:g} s and was killed "
                      f"(config.agent.timeout_s)", excerpt=excerpt, data=data)
    first = done.output.strip().splitlines()[:1]
    if done.returncode == 127 and first and first[0].startswith(f"{argv[0]}: "):  # the launcher's exec failed
        return Result(tool, ERROR, f"{cmd.runner} could not start: {first[0]}", excerpt=excerpt, data=data)
    return done, data


def _read_only(ctx: Context, output: str) -> str:
    """Why a command failed when it tried to write to the read-only workspace ("" otherwise)."""
    if ctx.sandbox.allow_writes or READ_ONLY not in output:
        return ""
    first = output.strip().splitlines()[0]
    return f"it writes to the workspace, which is read-only without --allow_writes ({first})"


def _timing(cmd: Command, data: dict) -> str:
    return f"({cmd.runner}, {data['seconds']:.1f} s)"


def _tests(ctx: Context, tool: str, cmd: Command) -> tuple[Result, reports.Report | None]:
    """Run the tests; the Result and the report it was read from (None when they did not run)."""
    out = _execute(ctx, tool, cmd)
    if isinstance(out, Result):
        out.data.update(passed=None, failed=None, errors=None, skipped=None)
        return out, None
    done, data = out
    root = ctx.sandbox.root
    report = reports.parse_tests(done.output, root, cmd.parser)
    counts = {k: getattr(report, k) if report.runner else None for k in ("passed", "failed", "errors", "skipped")}
    data.update(counts)
    excerpt = ctx.excerpt(done.output)
    rc = done.returncode
    if cmd.parser == "pytest" and re.search(r"No module named pytest$", done.output, re.M):
        why = f"pytest is not installed for {cmd.argv[0]}: install it there or set config.agent.test_command"
        return Result(tool, ERROR, why, excerpt=excerpt, data=data), None
    if cmd.parser == "pytest" and rc in (3, 4):  # pytest's internal and usage errors
        last = done.output.strip().splitlines()[-1:] or [""]
        return Result(tool, ERROR, f"pytest could not run (exit {rc}): {last[0]}", excerpt=excerpt, data=data), None
    if report.runner is None:
        errors, _ = reports.parse_build(done.output, root) if rc else ([], 0)
        items = [Item(e.message, e.path, e.line) for e in errors]
        if rc and not errors and (why := _read_only(ctx, done.output)):
            return Result(tool, ERROR, f"{cmd.runner} could not run: {why}", excerpt=excerpt, data=data), None
        found = f"{len(errors)} build error(s)" if errors else "no test counts in the output"
        head = "passed (exit 0; no test counts in the output)" if rc == 0 else f"failed (exit {rc}): {found}"
        return Result(tool, OK if rc == 0 else FAILED, f"{head} {_timing(cmd, data)}", items, excerpt, data), report
    parts = [f"{report.passed} passed", f"{report.failed} failed"]
    parts += [f"{n} {what}" for n, what in ((report.errors, "error(s)"), (report.skipped, "skipped")) if n]
    head = ", ".join(parts)
    if report.total == 0 and not report.failures:
        return Result(tool, FAILED, f"no tests collected: {cmd.runner} found no tests to run "
                      f"{_timing(cmd, data)}", [], excerpt, data), report
    if rc and not (report.failed or report.errors or report.failures):
        head += f", but {cmd.runner} exited {rc}"
    status = FAILED if rc or report.failed or report.errors or report.failures else OK
    items = [Item(f"{f.test}: {f.message}", f.path, f.line) for f in report.failures]
    return Result(tool, status, f"{head} {_timing(cmd, data)}", items, excerpt, data), report


def run_tests(ctx: Context, args: dict[str, str]) -> Result:
    """The workspace's tests: counts, and one item per failing test at its failing line."""
    return _tests(ctx, "RUN_TESTS", _command(ctx, "test"))[0]


def check_build(ctx: Context, args: dict[str, str]) -> Result:
    """The workspace's build or compile check: one item per error at its file:line."""
    cmd = _command(ctx, "build")
    out = _execute(ctx, "CHECK_BUILD", cmd)
    if isinstance(out, Result):
        out.data.update(errors=None, warnings=None)
        return out
    done, data = out
    errors, warnings = reports.parse_build(done.output, ctx.sandbox.root)
    data.update(errors=len(errors), warnings=warnings)
    excerpt = ctx.excerpt(done.output)
    items = [Item(e.message, e.path, e.line) for e in errors]
    lines = done.output.strip().splitlines()
    checked = f": {lines[-1]}" if cmd.runner == "python" and lines else ""
    noted = f", {warnings} warning(s)" if warnings else ""
    if done.returncode == 0:
        return Result("CHECK_BUILD", OK, f"build ok{checked}{noted} {_timing(cmd, data)}", items, excerpt, data)
    if not errors and (why := _read_only(ctx, done.output)):
        return Result("CHECK_BUILD", ERROR, f"{cmd.runner} could not run: {why}", excerpt=excerpt, data=data)
    head = (f"build failed: {len(errors)} error(s){noted}" if errors else
            f"build failed (exit {done.returncode}); the output names no file:line, see the excerpt")
    return Result("CHECK_BUILD", FAILED, f"{head} {_timing(cmd, data)}", items, excerpt, data)


def _rerun(cmd: Command, tests: list[str]) -> Command | None:
    """`cmd` narrowed to the given tests (pytest node ids, cargo test names, go test names); None
    for a runner that cannot select single tests."""
    if cmd.parser == "pytest":
        return Command(cmd.runner, cmd.argv + tests, cmd.parser)
    if cmd.parser == "cargo":
        return Command(cmd.runner, cmd.argv + ([] if "--" in cmd.argv else ["--"]) + ["--exact", *tests], cmd.parser)
    if cmd.parser == "go":
        at = cmd.argv.index("test") + 1
        pattern = "^(" + "|".join(re.escape(t) for t in tests) + ")$"
        return Command(cmd.runner, cmd.argv[:at] + ["-run", pattern] + cmd.argv[at:], cmd.parser)
    return None


def _source_line(ctx: Context, path: str | None, line: int | None) -> str:
    if path is None or line is None:
        return ""
    try:
        lines = ctx.sandbox.path(path).read_text(errors="replace").splitlines()
    except (OSError, ValueError):
        return ""
    return lines[line - 1].strip() if 1 <= line <= len(lines) else ""


def fix_tests(ctx: Context, args: dict[str, str]) -> Result:
    """Triage, not repair: run the tests; for each failing test its message, its failing line and
    that line's source; then re-run only the failures to tell a real failure (fails again) from a
    flaky one (passes). No code is edited, with or without --allow_writes: there is no
    code-editing model yet, and the summary and data["edits"] say so."""
    edits = ("code not edited: FIX_TESTS triages only" if ctx.sandbox.allow_writes
             else "code not edited (writes are off: --allow_writes)")
    cmd = _command(ctx, "test")
    first, report = _tests(ctx, "FIX_TESTS", cmd)
    first.data["edits"] = edits
    if first.status == ERROR:
        return first
    failures = report.failures if report else []
    if not failures:
        what = "nothing to triage" if first.status == OK else "the output names no failing test to triage"
        first.summary = f"{first.summary}; {what}; {edits}"
        return first
    again = None  # test ids failing on the re-run; None when it could not tell
    rerun = _rerun(cmd, list(dict.fromkeys(f.test for f in failures)))
    if rerun is not None:
        second, second_report = _tests(ctx, "FIX_TESTS", rerun)
        first.data.update(rerun_command=second.data["command"], rerun_summary=second.summary,
                          rerun_excerpt=second.excerpt)
        if second_report is not None and second_report.runner:
            again = {f.test for f in second_report.failures}
    else:
        first.data.update(rerun_command=None, rerun_summary=f"not re-run: {cmd.runner} cannot run single tests")
    triaged, items = [], []
    for f in failures:
        verdict = ("not re-run" if again is None else "fails again" if f.test in again else "passed on re-run (flaky)")
        source = _source_line(ctx, f.path, f.line)
        at = f" at {f.path}:{f.line}" + (f": {source}" if source else "") if f.path else ""
        triaged.append(dict(test=f.test, message=f.message, path=f.path, line=f.line, source=source, rerun=verdict))
        items.append(Item(f"{f.test}: {f.message}{at} [{verdict}]", f.path, f.line))
    real = sum(t["rerun"] == "fails again" for t in triaged)
    flaky = sum(t["rerun"].startswith("passed") for t in triaged)
    verdicts = f"{real} fail again, {flaky} passed on re-run" if again is not None else first.data["rerun_summary"]
    first.data["failures"] = triaged
    return Result("FIX_TESTS", FAILED, f"{len(failures)} failing test(s) triaged ({verdicts}; first run: "
                  f"{first.summary}); {edits}", items, first.excerpt, first.data)


TOOLS = {"RUN_TESTS": run_tests, "CHECK_BUILD": check_build, "FIX_TESTS": fix_tests}
