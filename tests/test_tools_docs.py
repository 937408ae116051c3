"""DOCS_LINT, PROVE_ALGEBRA and LEAN_SUITE on real temporary workspaces."""

import os
import stat

import pytest
from sympy.parsing import sympy_parser

from gestalt_jax import config as config_lib
from gestalt_jax.agent.sandbox import Sandbox
from gestalt_jax.agent.tools import docs, proofs
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, ToolError


def _ctx(ws, tmp_path):
    config = config_lib.base()
    return Context(sandbox=Sandbox(ws, config.agent), config=config, workdir=tmp_path / "work")


@pytest.fixture
def ws(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


# -- DOCS_LINT -------------------------------------------------------------------------------------
README = """\
# Project

Read the [guide](docs/guide.md) and [the missing page](docs/missing.md).

## Usage

First usage.

## Usage

Again, see [the second usage](#usage-1), [the first](#usage) and
[a heading that is not there](#installing), [the API](docs/guide.md#api),
[a guide section that is not there](docs/guide.md#nothing),
[the web](https://example.com/gone.md) and [mail](mailto:someone@example.com).
An [escape](../../etc/passwd) and an ![image](img/logo.png).
"""


def _workspace(ws):
    (ws / "docs").mkdir()
    (ws / "README.md").write_text(README)
    (ws / "docs" / "guide.md").write_text("# Guide\n\n## API\n\nBack to [the project](../README.md#project).\n")
    (ws / ".gitignore").write_text("build/\n")
    for ignored in ("build", ".cache"):  # .gitignore'd and hidden: not linted
        (ws / ignored).mkdir()
        (ws / ignored / "notes.md").write_text("[gone](nowhere.md)\n")


def test_docs_lint_reports_each_problem_with_its_line(ws, tmp_path):
    _workspace(ws)
    result = docs.docs_lint(_ctx(ws, tmp_path), {})
    assert result.status == FAILED
    assert result.summary == "5 problems in 2 Markdown files"
    by_text = {item.text: item for item in result.items}
    assert set(by_text) == {
        "README.md:3: broken link 'docs/missing.md' (no such file)",
        "README.md:12: broken anchor '#installing' (no heading 'installing' in this file)",
        "README.md:13: broken anchor 'docs/guide.md#nothing' (no heading 'nothing' in docs/guide.md)",
        "README.md:15: link '../../etc/passwd' leaves the workspace",
        "README.md:15: broken image 'img/logo.png' (no such file)",
    }
    missing = by_text["README.md:3: broken link 'docs/missing.md' (no such file)"]
    assert (missing.path, missing.line) == ("README.md", 3)


def test_docs_lint_ok_when_every_link_resolves(ws, tmp_path):
    (ws / "a.md").write_text("# A\n\n## Usage\n## Usage\n\n[b](b.markdown#b-title) [again](#usage-1) "
                             "[self](a.md) [dir](.) [web](http://example.com)\n")
    (ws / "b.markdown").write_text("# B Title\n")
    result = docs.docs_lint(_ctx(ws, tmp_path), {})
    assert (result.status, result.summary, result.items) == (OK, "0 problems in 2 Markdown files", [])


def test_slug_follows_github():
    assert docs.slug("`code` & Stuff: It's Über!") == "code--stuff-its-über"
    assert docs.slug("Hello, World_2 - Now") == "hello-world_2---now"


# -- PROVE_ALGEBRA ---------------------------------------------------------------------------------
@pytest.mark.parametrize("lhs, rhs", [("(a+b)^2", "a^2+2ab+b^2"), ("2x*x", "2x^2"),
                                      ("sin(x)^2 + cos(x)^2 = 1", ""), ("x(x+1)", "x^2 + x")])
def test_prove_algebra_proves(ws, tmp_path, lhs, rhs):
    result = proofs.prove_algebra(_ctx(ws, tmp_path), {"lhs": lhs, "rhs": rhs})
    assert result.status == OK, result.summary
    assert result.summary.startswith("proved")


def test_prove_algebra_shows_expanded_forms(ws, tmp_path):
    result = proofs.prove_algebra(_ctx(ws, tmp_path), {"lhs": "(a+b)^2", "rhs": "a^2+2ab+b^2"})
    assert [i.text for i in result.items] == ["lhs expanded: a**2 + 2*a*b + b**2",
                                              "rhs expanded: a**2 + 2*a*b + b**2"]


def test_prove_algebra_refutes_with_a_counterexample(ws, tmp_path):
    result = proofs.prove_algebra(_ctx(ws, tmp_path), {"lhs": "(a+b)^2", "rhs": "a^2+b^2"})
    assert result.status == FAILED
    assert result.summary.startswith("refuted")
    assert result.items[-1].text == "counterexample: a=1, b=1: lhs = 4, rhs = 2"
    assert result.data["counterexample"] == {"a": 1, "b": 1}


@pytest.mark.parametrize("lhs, why", [
    ("__import__('os').system('touch {marker}')", "not an algebraic expression"),
    ("lambda: 1", "not an algebraic expression (':' is not allowed"),
    ("open('f')", "not an algebraic expression"),
    ("import os", "'import' is Python, not algebra"),
    ("x.func", "'.' may only be a decimal point"),
    ("(a+b)^100000", "exponent 100000 is over the cap of 100"),
])
def test_prove_algebra_refuses_without_evaluating(ws, tmp_path, monkeypatch, lhs, why):
    marker = tmp_path / "executed"
    lhs = lhs.format(marker=marker)
    parsed = []
    if "^" not in lhs:  # text refused before parse_expr (the exponent cap applies to the parsed tree)
        monkeypatch.setattr(sympy_parser, "parse_expr", lambda *a, **k: parsed.append(a))
    with pytest.raises(ToolError) as refused:
        proofs.prove_algebra(_ctx(ws, tmp_path), {"lhs": lhs, "rhs": "1"})
    assert str(refused.value).startswith(f"lhs {lhs!r}: ")
    assert why in str(refused.value)
    assert parsed == [] and not marker.exists()


def test_prove_algebra_refuses_a_bad_rhs_and_a_blow_up(ws, tmp_path):
    ctx = _ctx(ws, tmp_path)
    with pytest.raises(ToolError, match=r"^rhs 'os\.system': "):
        proofs.prove_algebra(ctx, {"lhs": "x", "rhs": "os.system"})
    with pytest.raises(ToolError, match="more than 2000 terms"):
        proofs.prove_algebra(ctx, {"lhs": "(a+b+c+d)^30", "rhs": "1"})
    with pytest.raises(ToolError, match=r"exponent 1000000000\.0* is over the cap"):
        proofs.prove_algebra(ctx, {"lhs": "2^1e9", "rhs": "1"})
    with pytest.raises(ToolError, match=r"^lhs 'x/0': undefined"):
        proofs.prove_algebra(ctx, {"lhs": "x/0", "rhs": "1"})
    with pytest.raises(ToolError, match="needs both sides"):
        proofs.prove_algebra(ctx, {"lhs": "(a+b)^2", "rhs": ""})


# -- LEAN_SUITE ------------------------------------------------------------------------------------
LEAN_OUTPUT = """\
Main.lean:3:4: error: unknown identifier 'foo'
Main.lean:7:0: warning: declaration uses 'sorry'
Lib/Algebra.lean:12:2: error(lean.unknownIdentifier): type mismatch
  h
has type
  a = b
error: ./././Lib/Ring.lean:5:10: unsolved goals
error: Lean exited with code 1
"""


def test_lean_messages_parses_lean_and_lake_output():
    assert proofs.lean_messages(LEAN_OUTPUT) == [
        ("Main.lean", 3, 4, "error", "unknown identifier 'foo'"),
        ("Main.lean", 7, 0, "warning", "declaration uses 'sorry'"),
        ("Lib/Algebra.lean", 12, 2, "error", "type mismatch"),
        ("Lib/Ring.lean", 5, 10, "error", "unsolved goals"),
    ]


def test_lean_suite_without_lean_files(ws, tmp_path):
    (ws / "README.md").write_text("# no Lean here\n")
    result = proofs.lean_suite(_ctx(ws, tmp_path), {})
    assert (result.status, result.summary) == (ERROR, "no Lean files in the workspace")


def test_lean_suite_says_lean_is_not_installed(ws, tmp_path, monkeypatch):
    (ws / "Main.lean").write_text("theorem t : 1 + 1 = 2 := rfl\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = proofs.lean_suite(_ctx(ws, tmp_path), {})
    assert result.status == ERROR
    assert result.summary == ("Lean is not installed (no `lake` or `lean` on PATH); "
                              "see https://leanprover-community.github.io/get_started.html")


def test_lean_suite_runs_lean_per_file_in_the_sandbox(ws, tmp_path, monkeypatch):
    """A stand-in `lean` that reports an error for one file: the items carry its place."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lean = bin_dir / "lean"
    lean.write_text('#!/bin/sh\nif [ "$1" = Bad.lean ]; then echo "$1:2:6: error: unknown constant"; exit 1; fi\n')
    lean.chmod(lean.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")
    (ws / "Good.lean").write_text("theorem t : 1 + 1 = 2 := rfl\n")
    (ws / "Bad.lean").write_text("theorem u : True :=\n  nope\n")
    result = proofs.lean_suite(_ctx(ws, tmp_path), {})
    assert result.status == FAILED, result.excerpt
    assert result.summary == "lean on 2 file(s): 1 error(s), 0 sorry warning(s)"
    assert [(i.text, i.path, i.line) for i in result.items] == [
        ("Bad.lean:2: error: unknown constant", "Bad.lean", 2)]
