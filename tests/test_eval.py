"""`gestalt eval` on goals: scoring, a user bench file, and goals whose arguments round-trip
through training, planning and the policy into concrete values."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.evals import bench
from gestalt_jax.evals import goals as goal_scores
from gestalt_jax.infer import decide as decide_lib
from gestalt_jax.infer import policy as policy_lib
from gestalt_jax.infer import trained as trained_lib
from gestalt_jax.model.policy import build_policy
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels

REPO = Path(__file__).resolve().parents[1]

PATH_GOAL = {"goal": "open crates/net-io/src/Socket_v2.rs please", "intent": "READ_FILE",
             "actions": ["READ_FILE"], "args": [{"path": "crates/net-io/src/Socket_v2.rs"}]}
IDENT_GOAL = {"goal": "where is parseConfigV2 defined? open it", "intent": "COMPOSITE",
              "actions": ["SEARCH", "READ_FILE"],
              "args": [{"pattern": "parseConfigV2"}, {"path": {"from": 1, "pick": 1}}]}


def _write(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_score_counts_each_metric_on_its_own():
    records = [dict(PATH_GOAL, _where="b:1"), dict(IDENT_GOAL, _where="b:2"),
               {"goal": "hi", "intent": "CONVERSATION", "actions": ["TALK"], "_where": "b:3"}]
    steps = [[{"tool": "READ_FILE", "args": {"path": "crates/net-io/src/Socket_v2.rs"}}],
             [{"tool": "SEARCH", "args": {"pattern": "parseConfig"}},  # wrong span
              {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 1}}}],
             [{"tool": "TALK", "args": {}}]]
    plans = [{"steps": steps[0]}, {"steps": steps[1]}, None]  # the third did not parse
    policy = [{"intent": "READ_FILE", "steps": steps[0]}, {"intent": "SEARCH", "steps": steps[1]},
              {"intent": "CONVERSATION", "steps": [{"tool": "SEARCH", "args": {}}]}]
    metrics, failures = goal_scores.score(records, plans, policy)
    assert metrics == dict(n=3, n_args=2, n_arg_tools=2, intent_acc=2 / 3, planner_actions_acc=2 / 3,
                           policy_actions_acc=2 / 3, args_acc=1 / 2, policy_args_acc=1 / 2, args_resolve=1.0,
                           policy_args_resolve=1.0, parse_rate=2 / 3, agreement=2 / 3)
    assert [f["where"] for f in failures] == ["b:2", "b:3"]
    assert set(failures[0]["wrong"]) == {"intent_acc", "args_acc", "policy_args_acc"}
    assert set(failures[1]["wrong"]) == {"planner_actions_acc", "policy_actions_acc", "parse_rate", "agreement"}


def test_scores_without_labelled_arguments_are_none():
    r = {"goal": "hi", "intent": "CONVERSATION", "actions": ["TALK"]}
    talk = {"steps": [{"tool": "TALK", "args": {}}]}
    metrics, failures = goal_scores.score([r], [talk], [dict(talk, intent="CONVERSATION")])
    assert metrics["args_acc"] is None and metrics["policy_args_acc"] is None and not failures


@pytest.fixture(scope="module")
def trained(train_once, decode_env, tmp_path_factory, test_tier):
    """The test tier's planner and policy overfit on two goals (each written 10 times, so the
    seeded val split holds copies of both), trained once per test run by `gestalt train` at -O1
    (its 300 steps run about 3x faster than at the tests' -O0), copied for this module's evals to
    write into; and the config it trained with."""
    c, flags = test_tier(dict(data=dict(goal_augment=0.0, goals_extra=""),
                              **{phase: dict(steps=150, eval_every=50, lr=3e-3, batch_size=8)
                                 for phase in ("planner_sft", "policy_sft")}))
    goals = "".join(json.dumps(r) + "\n" for r in [PATH_GOAL, IDENT_GOAL] * 10)
    trained_dir = train_once("two_goals", [f"--config={REPO}/configs/test.py", "--phases=planner,policy",
                                           "--config.data.goals_file={workdir}/goals.jsonl", *flags],
                             files={"goals.jsonl": goals}, env=decode_env)
    workdir = tmp_path_factory.mktemp("run")
    shutil.copytree(trained_dir, workdir, dirs_exist_ok=True)
    c.data.goals_file = str(trained_dir / "goals.jsonl")
    return c, workdir


def test_path_and_identifier_round_trip_into_concrete_arguments(trained):
    c, workdir = trained
    bench_file = _write(workdir / "mine.jsonl", [PATH_GOAL, IDENT_GOAL])
    results = bench.evaluate(c, workdir, [str(bench_file)], builtin=False)
    m = results["mine"]
    assert (m["n"], m["parse_rate"], m["planner_actions_acc"], m["args_acc"]) == (2, 1.0, 1.0, 1.0)
    assert (m["policy_actions_acc"], m["policy_args_acc"], m["intent_acc"], m["agreement"]) == (1.0, 1.0, 1.0, 1.0)
    assert json.loads((workdir / "eval" / "goals.json").read_text())["mine"]["args_acc"] == 1.0
    assert (workdir / "eval" / "failures_mine.jsonl").read_text() == ""


def test_eval_command_on_a_user_bench_prints_json_last(trained, tmp_path, decode_env):
    c, workdir = trained
    wrong = dict(PATH_GOAL, intent="LIST_FILES", actions=["LIST_FILES"], args=[{"path": "crates/net-io"}])
    # Longer than both the planner's and the policy's length: scored on the goal's end, no crash.
    long = dict(PATH_GOAL, goal="so, about that thing we discussed earlier: " * 12 + PATH_GOAL["goal"])
    bench_file = _write(tmp_path / "user.jsonl", [IDENT_GOAL, wrong, long])
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "eval", f"--config={REPO}/configs/test.py",
                        f"--workdir={workdir}", f"--bench={bench_file}", "--json"], capture_output=True, text=True,
                       timeout=600, cwd=REPO, env=decode_env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(scores) == {"train", "val", "held_out", "user"}
    assert set(scores["user"]) == {"n", *bench.JSON_METRICS}
    assert scores["user"]["n"] == 3 and scores["user"]["parse_rate"] == 1.0
    assert 1 / 3 <= scores["user"]["planner_actions_acc"] <= 2 / 3  # `wrong` is wrong
    assert all(0.0 <= v <= 1.0 for s in scores.values() for k, v in s.items() if k != "n" and v is not None)
    failures = [json.loads(x) for x in (workdir / "eval" / "failures_user.jsonl").read_text().splitlines()]
    assert wrong["goal"] in [f["goal"] for f in failures]
    failure = next(f for f in failures if f["goal"] == wrong["goal"])
    assert failure["planner"][0]["tool"] == "READ_FILE" and failure["policy"]["steps"]  # both predictions
    assert "READ_FILE" in r.stdout + r.stderr


def test_eval_without_a_trained_model_names_the_directory(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "eval", f"--config={REPO}/configs/test.py",
                        f"--workdir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 1
    assert f"no trained planner in {tmp_path}/checkpoints/planner_sft" in r.stderr


def test_eval_uses_the_config_saved_with_the_checkpoints(trained, decode_env):
    """Trained on its own goals file with its own steps: eval with the bare tier config scores the
    same split and says which model setting from the command line it does not use."""
    c, workdir = trained
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "eval", f"--config={REPO}/configs/test.py",
                        f"--workdir={workdir}", "--config.planner.d_model=32", "--json"],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env=decode_env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert (scores["train"]["n"], scores["val"]["n"]) == (18, 2)  # the fixture's 20 goals, not the built-in ones
    assert scores["train"]["planner_actions_acc"] == 1.0
    assert "config.planner.d_model=32 is not used: the trained planner has 64" in r.stdout + r.stderr


def test_a_planner_trained_before_the_clause_markers_is_named_in_one_line(trained_workdir, tmp_path):
    """A checkpoint whose saved config has no planner.vocab_size (the plan vocabulary before the
    clause markers) is refused with the key and the command that trains the planner again, not
    with a failed restore."""
    import shutil
    work = tmp_path / "old"
    shutil.copytree(trained_workdir, work, ignore=shutil.ignore_patterns("memory.sqlite*"))
    (config_file,) = (work / "checkpoints" / "planner_sft" / "best").glob("*/config/metadata")
    saved = json.loads(config_file.read_text())
    del saved["planner"]["vocab_size"]
    config_file.write_text(json.dumps(saved))
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "eval", "--config=configs/test.py",
                        f"--workdir={work}"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert ("does not fit this config: config.planner.vocab_size=" in r.stderr
            and "`gestalt train --phases=planner`" in r.stderr), r.stderr[-3000:]


def test_a_composite_goal_takes_the_tools_its_clauses_read_as(trained):
    """decide.clause_steps on the trained policy: each request clause of a COMPOSITE goal that
    clauses.run_order puts in run order is read as a goal of its own; its tools are the plan's steps only when every clause
    reads as one tool at the confidence asked for."""
    c, workdir = trained
    policy = trained_lib.load(c, workdir, "policy")
    twice = f"{PATH_GOAL['goal']}, then {PATH_GOAL['goal']}"
    goals = [twice, twice, f"before you {PATH_GOAL['goal']}, {PATH_GOAL['goal']}", PATH_GOAL["goal"],
             f"{PATH_GOAL['goal']}, but first {PATH_GOAL['goal']}"]
    intents = ["COMPOSITE", "READ_FILE", "COMPOSITE", "COMPOSITE", "COMPOSITE"]
    read = policy_lib.predict(build_policy(policy.config), policy.params, [PATH_GOAL["goal"]],
                              policy.config.policy.max_len)[0]
    assert read["intent"] == "READ_FILE"
    steps = decide_lib.clause_steps(policy, goals, intents, min_conf=0.0, batch_size=4)
    # one clause only (the fourth goal), another intent, or "before": left to the planner; "but first"
    # puts its request first (clauses.run_order)
    assert steps == [["READ_FILE", "READ_FILE"], None, None, None, ["READ_FILE", "READ_FILE"]]
    above = min(1.0, read["confidence"] + 1e-6)
    assert decide_lib.clause_steps(policy, goals[:1], intents[:1], min_conf=above, batch_size=4) == [None]


def _read(*pairs):
    return [dict(intent=intent, confidence=conf) for intent, conf in pairs]


@pytest.mark.parametrize("requests, readings, open_steps, steps", [
    # every clause sure: its tools, whatever open_steps allows
    (["Go through the suite", "patch up failures"], _read(("RUN_TESTS", 0.94), ("FIX_TESTS", 0.96)), 0,
     ["RUN_TESTS", "FIX_TESTS"]),
    # one unsure clause: an open step where one is allowed, no guidance where none is
    (["Go through the suite", "patch up failures", "go through it once more"],
     _read(("RUN_TESTS", 0.94), ("FIX_TESTS", 0.96), ("EVAL", 0.35)), 1, ["RUN_TESTS", "FIX_TESTS", None]),
    (["Go through the suite", "patch up failures", "go through it once more"],
     _read(("RUN_TESTS", 0.94), ("FIX_TESTS", 0.96), ("EVAL", 0.35)), 0, None),
    (["Verify compilation", "execute the suite", "mend anything red", "and so on"],
     _read(("CHECK_BUILD", 0.93), ("RUN_TESTS", 1.0), ("CONVERSATION", 0.39), ("EVAL", 0.2)), 1, None),
    # a clause read as COMPOSITE that names one hit is one step; one that names two refuses
    (["recall my notes on the parser rewrite", "grep parse_expr", "open the top hit"],
     _read(("MEMORY_SEARCH", 1.0), ("SEARCH", 1.0), ("COMPOSITE", 0.95)), 1, ["MEMORY_SEARCH", "SEARCH", None]),
    (["list src/models", "open the first two files", "search for forward("],
     _read(("LIST_FILES", 1.0), ("COMPOSITE", 0.92), ("SEARCH", 1.0)), 1, None),
    # a condition on the step before, or a list marker: no step; a request after "if": a step
    (["dry-run patches/i18n.patch", "if it applies", "run the tests"],
     _read(("PATCH_DRY_RUN", 1.0), ("PATCH_DRY_RUN", 0.71), ("RUN_TESTS", 1.0)), 1, ["PATCH_DRY_RUN", "RUN_TESTS"]),
    (["Build it", "once that's done", "train"], _read(("CHECK_BUILD", 1.0), ("CONVERSATION", 0.72), ("TRAIN", 1.0)),
     0, ["CHECK_BUILD", "TRAIN"]),
    (["1)", "build", "run the tests"], _read(("COMPOSITE", 0.89), ("CHECK_BUILD", 1.0), ("RUN_TESTS", 1.0)), 0,
     ["CHECK_BUILD", "RUN_TESTS"]),
    (["build", "test", "if anything fails fix it"], _read(("CHECK_BUILD", 1.0), ("RUN_TESTS", 1.0), ("FIX_TESTS", 0.48)),
     1, ["CHECK_BUILD", "RUN_TESTS", None]),
    (["please train the model", "when it's done", "tell me how it went"],
     _read(("TRAIN", 1.0), ("COMPOSITE", 0.94), ("CONVERSATION", 0.92)), 1, ["TRAIN", "TALK"]),
    # the last clause read as chat naming the user: the report (TALK); a hit named in chat: a step
    (["Repair the suite", "have the docs checked", "tell me how it went"],
     _read(("FIX_TESTS", 1.0), ("DOCS_LINT", 1.0), ("CONVERSATION", 0.92)), 0, ["FIX_TESTS", "DOCS_LINT", "TALK"]),
    (["Inspect the root directory", "show me item one", "look for SPDX-License-Identifier"],
     _read(("LIST_FILES", 0.93), ("CONVERSATION", 0.95), ("SEARCH", 0.96)), 1, ["LIST_FILES", None, "SEARCH"]),
    # other sure chat refuses: first, not last, or not naming the user; one tool is not enough
    (["hey gestalt", "run the tests", "fix them"],
     _read(("CONVERSATION", 0.99), ("RUN_TESTS", 1.0), ("FIX_TESTS", 1.0)), 1, None),
    (["run the tests", "tell me how it went", "fix them"],
     _read(("RUN_TESTS", 1.0), ("CONVERSATION", 0.99), ("FIX_TESTS", 1.0)), 1, None),
    (["remember that the demo is on Tuesday", "that Carol runs it"],
     _read(("MEMORY_ADD", 1.0), ("CONVERSATION", 0.95)), 1, None),
    (["show me item one", "run the tests", "fix them"],
     _read(("CONVERSATION", 0.95), ("RUN_TESTS", 1.0), ("FIX_TESTS", 1.0)), 1, None),
    (["run the tests", "and the rest"], _read(("RUN_TESTS", 1.0), ("EVAL", 0.3)), 1, None),
])
def test_the_steps_a_goals_clauses_give(requests, readings, open_steps, steps):
    assert decide_lib.steps_of_clauses(requests, readings, 0.9, open_steps) == steps


def test_a_policy_ensemble_reads_each_head_by_its_members_mean_probability():
    c = config_lib.load_tier("test")
    model = build_policy(c)
    goals = [PATH_GOAL["goal"], IDENT_GOAL["goal"], "hi", "run the tests then fix them"]
    ids = jnp.asarray(byte_tok.encode_left(goals, c.policy.max_len))
    members = tuple(nn.meta.unbox(model.init(jax.random.key(k), ids)["params"]) for k in (1, 2))
    got = policy_lib.predict(model, members, goals, c.policy.max_len, batch_size=4)
    mean = {head: np.mean([jax.nn.softmax(model.apply({"params": p}, ids)[head], -1) for p in members], axis=0)
            for head in ("intent", "actions")}
    assert [g["intent"] for g in got] == [labels.INTENTS[i] for i in mean["intent"].argmax(-1)]
    np.testing.assert_allclose([g["confidence"] for g in got], mean["intent"].max(-1), rtol=1e-4)
    first = mean["actions"][:, 0].copy()
    first[:, labels.ACTIONS.index("END")] = 0  # a plan has a first step
    assert [g["steps"][0]["tool"] for g in got] == [labels.ACTIONS[a] for a in first.argmax(-1)]


def test_a_quoted_argument_loses_its_loose_end_and_nothing_else():
    """A span that runs on into the next request ends where the request does; no argument of the
    built-in goal files (36,009) has such an end, so none of them changes."""
    def plan(*values):
        return {"steps": [{"tool": "MEMORY_SEARCH", "args": {"text": v}} for v in values], "think": None}
    loose = plan("the Postgres upgrade and then ", "purge takes ten minutes, and then ", "websocket.", "and",
                 "notebooks/experiments.", "NOTE:", "debugger;", "v1.2")
    assert [s["args"]["text"] for s in decide_lib.trimmed(loose)["steps"]] == [
        "the Postgres upgrade", "purge takes ten minutes", "websocket", "and", "notebooks/experiments", "NOTE:",
        "debugger;", "v1.2"]
    assert decide_lib.trimmed(plan({"from": 1, "pick": 2}))["steps"][0]["args"]["text"] == {"from": 1, "pick": 2}
    c = config_lib.load_tier("small")
    files = (c.data.goals_file, c.data.goals_held_out, c.data.goals_extra)
    labelled = [r for f in files for r in map(json.loads, Path(f).read_text().splitlines())]
    steps = [{"tool": tool, "args": dict(args)} for r in labelled for tool, args in zip(r["actions"], r["args"] or [])
             if any(isinstance(v, str) for v in args.values())]
    assert sum(isinstance(v, str) for s in steps for v in s["args"].values()) > 36000
    assert sum(s["tool"] == "MEMORY_SEARCH" for s in steps) > 4000
    assert decide_lib.trimmed({"steps": copy.deepcopy(steps), "think": None})["steps"] == steps


def test_a_memory_search_loses_when_it_was_said_and_nothing_else_does():
    """"what did I say about the linter last week?" looks for the linter: the when is cut off a memory
    search's text (the labelled goals never keep it), not off a note's ("Bob is on call this week")."""
    def step(tool, text):
        return {"tool": tool, "args": {"text": text}}
    said = [step("MEMORY_SEARCH", t) for t in ("the linter last week", "my notes from yesterday",
                                                 "port 7019 three days ago, and ", "the Friday deploy",
                                                 "the last incident", "yesterday")]
    assert [s["args"]["text"] for s in decide_lib.trimmed({"steps": said, "think": None})["steps"]] == [
        "the linter", "my notes", "port 7019", "the Friday deploy", "the last incident", "yesterday"]
    note = step("MEMORY_ADD", "Bob is on call this week")
    assert decide_lib.trimmed({"steps": [note], "think": None})["steps"] == [step("MEMORY_ADD", "Bob is on call this week")]


def test_a_planner_saved_before_goal_both_ways_is_rebuilt_reading_the_goal_causally():
    """A checkpoint's config saved before planner.goal_both_ways existed was trained with the goal
    read causally: it is rebuilt so, though today's default reads it both ways."""
    saved = json.loads(json.dumps(config_lib.base().to_dict()))  # as saved beside a checkpoint
    assert trained_lib.saved_onto_base(saved).planner.goal_both_ways is True
    del saved["planner"]["goal_both_ways"]
    assert trained_lib.saved_onto_base(saved).planner.goal_both_ways is False
    saved["planner"]["layers"] = 3  # and the values it has are kept
    assert trained_lib.saved_onto_base(saved).planner.layers == 3
