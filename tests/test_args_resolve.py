"""`args_resolve`: every argument of a plan resolves to a value its tool accepts, on a real
temporary workspace judged by the agent's own path resolver."""

import pytest

from gestalt_jax.agent import paths
from gestalt_jax.evals import goals as goal_scores

READ = {"goal": "open ./docs/intro.md", "intent": "READ_FILE", "actions": ["READ_FILE"],
        "args": [{"path": "./docs/intro.md"}]}
LIST = {"goal": "list src/", "intent": "LIST_FILES", "actions": ["LIST_FILES"], "args": [{"path": "src/"}]}
HOME = {"goal": "dry-run ~/fix.patch", "intent": "PATCH_DRY_RUN", "actions": ["PATCH_DRY_RUN"],
        "args": [{"path": "~/fix.patch"}]}


def _steps(*steps):
    return [{"tool": tool, "args": args} for tool, args in steps]


@pytest.fixture
def ws(tmp_path):
    """A workspace built from READ, LIST and HOME, next to a file outside it and with a symlink out."""
    (tmp_path / "ws").mkdir()
    (tmp_path / "outside.txt").touch()
    root = paths.workspace_root(tmp_path / "ws")
    goal_scores.build_workspace([READ, LIST, HOME], root)
    (root / "out").symlink_to(tmp_path)
    return root


def test_workspace_holds_the_labelled_paths_the_agent_accepts(ws):
    assert (ws / "docs" / "intro.md").is_file() and (ws / "src").is_dir()
    assert sorted(p.name for p in ws.iterdir()) == ["docs", "out", "src"]  # ~/fix.patch is refused


@pytest.mark.parametrize("tool, path, ok", [
    ("READ_FILE", "docs/intro.md", True), ("READ_FILE", "./docs/intro.md", True),
    ("READ_FILE", " docs/intro.md ", True), ("LIST_FILES", "src", True), ("LIST_FILES", "./src/", True),
    ("LIST_FILES", "src/", True), ("LIST_FILES", " ", True),  # blank: the workspace root
    ("READ_FILE", "docs/outro.md", False), ("READ_FILE", " ", False), ("PATCH_DRY_RUN", "~/fix.patch", False),
    ("READ_FILE", "../outside.txt", False), ("READ_FILE", "out/outside.txt", False),
    ("READ_FILE", "docs/../docs/intro.md", False)])
def test_a_path_resolves_when_the_agent_accepts_it_and_it_exists(ws, tool, path, ok):
    assert goal_scores.resolves(_steps((tool, {"path": path})), ws) is ok


def test_an_absolute_path_is_refused_even_inside_the_workspace(ws):
    assert not goal_scores.resolves(_steps(("READ_FILE", {"path": str(ws / "docs" / "intro.md")})), ws)
    assert not goal_scores.resolves(_steps(("READ_FILE", {"path": str(ws.parent / "outside.txt")})), ws)


@pytest.mark.parametrize("tool, name, value, ok", [
    ("SEARCH", "pattern", "parse_config", True), ("SEARCH", "pattern", " \t", False),
    ("MEMORY_ADD", "text", "the CI runner has 2 cores", True), ("MEMORY_ADD", "text", "  ", False),
    ("MEMORY_SEARCH", "text", "", False)])
def test_patterns_and_texts_resolve_when_not_blank(ws, tool, name, value, ok):
    assert goal_scores.resolves(_steps((tool, {name: value})), ws) is ok


@pytest.mark.parametrize("args, ok", [
    ({"lhs": "(a+b)^2", "rhs": "a^2 + 2ab + b^2"}, True),
    ({"lhs": "x^2 - 1 = (x-1)(x+1)"}, True),  # lhs alone as "A = B", as the tool reads it
    ({"lhs": "(a+b)^2", "rhs": "a^2 +* b"}, False), ({"lhs": "(a+b", "rhs": "a"}, False),
    ({"lhs": "__import__('os')", "rhs": "0"}, False), ({"lhs": "x^2"}, False)])
def test_equation_sides_resolve_when_prove_algebra_parses_them(ws, args, ok):
    assert goal_scores.resolves(_steps(("PROVE_ALGEBRA", args)), ws) is ok


@pytest.mark.parametrize("first, arg, pick, ok", [
    ("SEARCH", "path", {"from": 1, "pick": 1}, True), ("LIST_FILES", "path", {"from": 1, "pick": 16}, True),
    ("RUN_TESTS", "path", {"from": 1, "pick": 2}, True),
    ("SEARCH", "path", {"from": 1, "pick": 17}, False), ("SEARCH", "path", {"from": 1, "pick": 0}, False),
    ("SEARCH", "path", {"from": 2, "pick": 1}, False), ("SEARCH", "path", {"from": 0, "pick": 1}, False),
    ("EVAL", "path", {"from": 1, "pick": 1}, False),  # EVAL's items are scores, not files
    ("MEMORY_SEARCH", "path", {"from": 1, "pick": 1}, False),
    ("EVAL", "text", {"from": 1, "pick": 1}, True), ("TALK", "text", {"from": 1, "pick": 1}, True)])
def test_a_pick_resolves_from_an_earlier_step_whose_items_fit(ws, first, arg, pick, ok):
    tool = "READ_FILE" if arg == "path" else "MEMORY_ADD"
    first_args = {"pattern": "x"} if first == "SEARCH" else {"text": "x"} if first == "MEMORY_SEARCH" else {}
    assert goal_scores.resolves(_steps((first, first_args), (tool, {arg: pick})), ws) is ok


@pytest.mark.parametrize("tool, ok", [
    ("READ_FILE", False), ("PATCH_DRY_RUN", False), ("SEARCH", False), ("MEMORY_ADD", False),
    ("MEMORY_SEARCH", False), ("PROVE_ALGEBRA", False), ("LIST_FILES", True), ("RUN_TESTS", True)])
def test_a_step_without_the_argument_its_tool_needs_does_not_resolve(ws, tool, ok):
    assert goal_scores.resolves(_steps((tool, {})), ws) is ok


def test_an_unparsed_plan_does_not_resolve(ws):
    assert not goal_scores.resolves(None, ws)


def test_score_reports_the_share_of_plans_that_resolve():
    search = {"goal": "grep TODO and open the first hit", "intent": "COMPOSITE", "actions": ["SEARCH", "READ_FILE"],
              "args": [{"pattern": "TODO"}, {"path": {"from": 1, "pick": 1}}]}
    good = [_steps(("READ_FILE", {"path": "docs/intro.md"})),
            _steps(("SEARCH", {"pattern": "TODO"}), ("READ_FILE", {"path": {"from": 1, "pick": 1}}))]
    bad = [good[0], _steps(("SEARCH", {"pattern": "TODO"}), ("READ_FILE", {"path": "TODO"}))]  # not in the workspace
    metrics, failures = goal_scores.score(
        [READ, search], [{"steps": s} for s in bad],
        [{"intent": r["intent"], "steps": s} for r, s in zip([READ, search], good)])
    assert (metrics["n_arg_tools"], metrics["args_resolve"], metrics["policy_args_resolve"]) == (2, 0.5, 1.0)
    # READ's plan spells the path otherwise: args_acc misses it, but it resolves.
    assert {f["goal"]: "args_resolve" in f["wrong"] for f in failures} == {READ["goal"]: False, search["goal"]: True}
