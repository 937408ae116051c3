"""Reading test runners' and compilers' output into counts and workspace places.

The build tools (build.py) run the workspace's own commands and get back plain text; these
parsers turn it into what a later step can act on: how many tests passed and failed, and for each
failure its id, its message and the workspace file and line where it failed, so that READ_FILE can
open that line. A parser that does not recognise its runner's output returns a report with
`runner=None`, and the tool falls back to the exit code.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from gestalt_jax.agent.tools.base import shorten

# Directories holding none of the workspace's own code: pytest's default norecursedirs, build
# outputs, virtual environments and dependencies. Hidden directories (.venv, .git, .tox) too.
SKIP_DIRS = frozenset({"build", "dist", "node_modules", "venv", "site-packages", "__pycache__",
                       "target", "CVS", "_darcs", "{arch}"})
MESSAGE_CHARS = 200  # a failure's message is cut to this: items stay one readable line


def skipped_dir(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS or name.endswith(".egg")


@dataclasses.dataclass
class Located:
    """A message with the workspace file and line it is about (None where the output names none
    inside the workspace)."""
    message: str
    path: str | None = None
    line: int | None = None


@dataclasses.dataclass
class Failure(Located):
    """A failing test: `test` is the runner's own id for it (pytest node id, cargo test name, go
    test name), the one that re-runs it alone."""
    test: str = ""


@dataclasses.dataclass
class Report:
    """Counts and failures of one test run. pytest's xfailed count as skipped, xpassed as passed."""
    runner: str | None = None
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[Failure] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped


def place(root: Path, path: str) -> str | None:
    """`path` (absolute, or relative to the workspace, where every runner here is started) as a
    workspace-relative file; None for a file outside the workspace's own code (the standard
    library, site-packages, a venv inside the workspace) or one that does not exist."""
    joined = os.path.normpath(os.path.join(root, path))
    rel = Path(os.path.relpath(joined, root))
    if rel.parts[:1] == ("..",) or any(skipped_dir(p) for p in rel.parts[:-1]) or not os.path.isfile(joined):
        return None
    return rel.as_posix()


def _short(message: str) -> str:
    return shorten(message, MESSAGE_CHARS)


# -- pytest (-rfE --tb=short) ----------------------------------------------------------------------
_PYTEST_FINAL = re.compile(r"^=*\s*(?:no tests ran|\d+ \w+(?:, \d+ \w+)*) in [\d.]+s\b")
_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b")
_PYTEST_SUMMARY = re.compile(r"^(FAILED|ERROR) (.+?)(?: - (.*))?$")
_PYTEST_SECTION = re.compile(r"^_{2,} (.+?) _{2,}$")
_PYTEST_BANNER = re.compile(r"^={3,}")
_PYTEST_FRAME = re.compile(r"^(\S.*?):(\d+): in \S|^E\s+File \"(.+)\", line (\d+)")
_PYTEST_ERROR_HEAD = re.compile(r"^ERROR (?:at (?:setup|teardown) of |collecting )")


def parse_pytest(output: str, root: Path) -> Report:
    """Counts from the final "1 failed, 1 passed in 0.1s" line; one failure per short-summary
    line ("FAILED tests/test_x.py::test_b - assert 1 == 2", "ERROR tests/test_y.py"), placed at
    the deepest traceback frame inside the workspace of its section ("____ test_b ____")."""
    lines = output.splitlines()
    final = next((l for l in reversed(lines) if _PYTEST_FINAL.search(l)), None)
    if final is None:
        return Report()
    report = Report("pytest")
    for n, what in _PYTEST_COUNT.findall(final):
        field = {"error": "errors", "xfailed": "skipped", "xpassed": "passed"}.get(what, what)
        setattr(report, field, getattr(report, field) + int(n))
    sections: dict[tuple[str, str], list[list[str]]] = {}  # (FAILED|ERROR, head line) -> bodies in order
    body: list[str] | None = None
    for line in lines:
        if m := _PYTEST_SECTION.match(line):
            head = m.group(1)
            kind = "ERROR" if _PYTEST_ERROR_HEAD.match(head) else "FAILED"
            body = []
            sections.setdefault((kind, _PYTEST_ERROR_HEAD.sub("", head)), []).append(body)
        elif _PYTEST_BANNER.match(line):
            body = None
        elif body is not None:
            body.append(line)
    for line in lines:
        if not (m := _PYTEST_SUMMARY.match(line)):
            continue
        kind, node, message = m.groups()
        head = node.split("::", 1)[1].replace("::", ".") if "::" in node else node
        bodies = sections.get((kind, head)) or [[]]
        failure = _pytest_failure(bodies.pop(0) if len(bodies) > 1 else bodies[0], root)
        failure.test = node
        failure.message = _short(failure.message or message or kind.lower())
        report.failures.append(failure)
    return report


def _pytest_failure(body: list[str], root: Path) -> Failure:
    """The first exception line ("E   AssertionError: ...", not its indented continuation) and the
    deepest frame inside the workspace."""
    message = next((l[4:] for l in body if l.startswith("E   ") and not l[4:5].isspace()), "")
    where = Failure(message)
    for line in body:
        if m := _PYTEST_FRAME.match(line):
            path, number = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            if (rel := place(root, path)) is not None:
                where.path, where.line = rel, int(number)
    return where


# -- cargo test ------------------------------------------------------------------------------------
_CARGO_RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored")
_CARGO_FAILED = re.compile(r"^test (\S+) \.\.\. FAILED$")
_CARGO_STDOUT = re.compile(r"^---- (\S+) stdout ----$")
# Rust >= 1.73: "thread 'x' (57) panicked at src/lib.rs:9:16:" and the message on the next lines;
# before: "thread 'x' panicked at 'message', src/lib.rs:9:16".
_CARGO_PANIC = re.compile(r"^thread '[^']*'(?: \(\d+\))? panicked at (?:'(.*)', )?(\S+?):(\d+):\d+:?$")


def parse_cargo_test(output: str, root: Path) -> Report:
    """Counts summed over the "test result: ..." line of every test binary; failures from the
    "test x ... FAILED" lines, placed and explained by the panic in their "---- x stdout ----"."""
    lines = output.splitlines()
    report = Report()
    for line in lines:
        if m := _CARGO_RESULT.match(line):
            report.runner = "cargo"
            report.passed += int(m.group(1))
            report.failed += int(m.group(2))
            report.skipped += int(m.group(3))
    if report.runner is None:
        return report
    panics: dict[str, Failure] = {}
    current = None
    for i, line in enumerate(lines):
        if m := _CARGO_STDOUT.match(line):
            current = m.group(1)
        elif current and (m := _CARGO_PANIC.match(line)):
            message = m.group(1)
            if message is None:
                rest = []
                for follow in lines[i + 1:]:
                    if not follow.strip() or follow.startswith("note: "):
                        break
                    rest.append(follow.strip())
                message = "; ".join(rest)
            panics.setdefault(current, Failure(_short(message), place(root, m.group(2)), int(m.group(3))))
    for name in dict.fromkeys(m.group(1) for l in lines if (m := _CARGO_FAILED.match(l))):
        failure = panics.get(name, Failure("failed"))
        failure.test = name
        report.failures.append(failure)
    return report


# -- go test -v ------------------------------------------------------------------------------------
_GO_RESULT = re.compile(r"^--- (PASS|FAIL|SKIP): (\S+)")  # top-level tests only: subtests are indented
_GO_CURRENT = re.compile(r"^(?:=== (?:RUN|CONT|NAME)\s+|\s*--- FAIL: )(\S+)")
_GO_LOG = re.compile(r"^\s+(\S+\.go):(\d+): (.*)$")
_GO_PACKAGE = re.compile(r"^(?:ok|FAIL|\?)\s*\t(\S+)\t")  # "ok  \tpkg\t0.01s", "?   \tpkg\t[no test files]"


def parse_go_test(output: str, root: Path) -> Report:
    """Counts of the top-level "--- PASS/FAIL/SKIP: TestX" lines; each failure's first
    "x_test.go:12: message" log line, whose file go names without its directory: that comes from
    the package line ("FAIL example.com/m/sub 0.01s") and go.mod's module path."""
    report, logs, pending = Report(), {}, []
    current = None
    for line in output.splitlines():
        if m := _GO_RESULT.match(line):
            report.runner = "go"
            kind, name = m.groups()
            if kind == "FAIL":
                report.failed += 1
                pending.append(Failure("failed", test=name))
            elif kind == "PASS":
                report.passed += 1
            else:
                report.skipped += 1
        if m := _GO_CURRENT.match(line):
            current = m.group(1).split("/")[0]
        elif current and (m := _GO_LOG.match(line)):
            logs.setdefault(current, m.groups())
        elif m := _GO_PACKAGE.match(line):
            report.runner = "go"
            for failure in pending:
                if failure.test in logs:
                    file, number, message = logs[failure.test]
                    failure.message = _short(message)
                    failure.path, failure.line = _go_file(root, m.group(1), file), int(number)
            report.failures += pending
            pending, logs = [], {}
    report.failures += pending
    return report


def _go_file(root: Path, package: str, file: str) -> str | None:
    module = re.search(r"^module\s+(\S+)", _read(root / "go.mod"), re.M)
    if module and (package + "/").startswith(module.group(1) + "/"):
        if found := place(root, os.path.join(package[len(module.group(1)):].lstrip("/"), file)):
            return found
    matches = [p for p in root.rglob(file) if not any(skipped_dir(d) for d in p.relative_to(root).parts[:-1])]
    return place(root, str(matches[0])) if len(matches) == 1 else None


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


PARSERS = {"pytest": parse_pytest, "cargo": parse_cargo_test, "go": parse_go_test}


def parse_tests(output: str, root: Path, runner: str | None) -> Report:
    """The report of `runner`'s parser, or, for another command (make test, npm test), of the
    first parser that recognises the output."""
    for name in [runner] if runner in PARSERS else PARSERS:
        if (report := PARSERS[name](output, root)).runner:
            return report
    return Report()


# -- build errors ----------------------------------------------------------------------------------
# "path:line[:col]: message": the Python check, go vet / go build ("./x.go:3:2: ..."),
# cargo --message-format short ("src/main.rs:3:5: error[E0425]: ..."), gcc and most compilers.
_LOCATED = re.compile(r"^(?:vet: )?(\S+?):(\d+)(?::\d+)?: (.*)$")
_RUST_HEAD = re.compile(r"^(error|warning)(\[\w+\])?: (.*)$")
_RUST_ARROW = re.compile(r"^\s*--> (\S+?):(\d+):\d+$")


def parse_build(output: str, root: Path) -> tuple[list[Located], int]:
    """(errors placed in the workspace, number of warnings) of a build or check: "path:line:
    message" lines, and rustc's "error[E0425]: message" followed by " --> src/main.rs:3:5"."""
    errors, warnings, head = [], 0, None
    for line in output.splitlines():
        if (m := _LOCATED.match(line)) and (path := place(root, m.group(1))):
            message = m.group(3)
            if message.startswith("warning"):
                warnings += 1
            else:
                errors.append(Located(_short(f"{path}:{m.group(2)}: {message}"), path, int(m.group(2))))
        elif m := _RUST_HEAD.match(line):
            head = m.group(0)
        elif head and (m := _RUST_ARROW.match(line)):
            if head.startswith("warning"):
                warnings += 1
            elif path := place(root, m.group(1)):
                errors.append(Located(_short(f"{path}:{m.group(2)}: {head}"), path, int(m.group(2))))
            head = None
    return errors, warnings
