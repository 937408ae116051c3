"""Checks of the built-in datasets: format, label space, argument spans, counts, limits."""

import collections
import json
from pathlib import Path

import pytest

DATASETS = Path(__file__).parent.parent / "datasets"
GOALS = DATASETS / "goals"
TALK = DATASETS / "talk"

TOOLS = [
    "TALK", "RUN_TESTS", "CHECK_BUILD", "FIX_TESTS", "DOCS_LINT", "SEARCH", "LIST_FILES",
    "READ_FILE", "PATCH_DRY_RUN", "PROVE_ALGEBRA", "LEAN_SUITE", "MEMORY_ADD",
    "MEMORY_SEARCH", "EVAL", "TRAIN",
]
INTENTS = ["CONVERSATION"] + TOOLS[1:] + ["COMPOSITE"]
# Argument names per tool; every listed name is required except LIST_FILES' path.
TOOL_ARGS = {
    "SEARCH": {"pattern"},
    "READ_FILE": {"path"},
    "LIST_FILES": {"path"},
    "PATCH_DRY_RUN": {"path"},
    "MEMORY_ADD": {"text"},
    "MEMORY_SEARCH": {"text"},
    "PROVE_ALGEBRA": {"lhs", "rhs"},
}
OPTIONAL_ARGS = {"LIST_FILES": {"path"}}
TALK_CATEGORIES = [
    "greeting", "identity", "technical", "engineering", "debugging", "philosophy",
    "support", "humour", "pop_culture", "creative", "out_of_domain", "tools",
]
ARG_TOOLS = ["SEARCH", "READ_FILE", "MEMORY_ADD", "MEMORY_SEARCH", "PROVE_ALGEBRA"]


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            assert line.strip(), f"{path}:{n}: blank line"
            row = json.loads(line)
            assert isinstance(row, dict), f"{path}:{n}: not an object"
            rows.append(row)
    return rows


@pytest.fixture(scope="module")
def goals():
    return {name: load(GOALS / f"{name}.jsonl") for name in ("train", "held_out")}


@pytest.fixture(scope="module")
def talk():
    return {name: load(TALK / f"{name}.jsonl") for name in ("train", "held_out", "gallery", "paraphrases")}


# ---------------------------------------------------------------- goals

def test_goal_counts(goals):
    assert len(goals["train"]) >= 320
    assert len(goals["held_out"]) >= 110
    composites = {k: sum(r["intent"] == "COMPOSITE" for r in v) for k, v in goals.items()}
    assert composites["train"] >= 80
    assert composites["held_out"] >= 30


def test_goal_fields_and_labels(goals):
    for name, rows in goals.items():
        for r in rows:
            assert set(r) == {"goal", "intent", "actions", "args"}, r
            assert isinstance(r["goal"], str) and r["goal"].strip() == r["goal"] and r["goal"]
            assert r["intent"] in INTENTS, r
            assert isinstance(r["actions"], list) and 1 <= len(r["actions"]) <= 4, r
            assert all(a in TOOLS for a in r["actions"]), r


def test_intent_matches_actions(goals):
    for rows in goals.values():
        for r in rows:
            acts = r["actions"]
            if len(acts) == 1:
                want = "CONVERSATION" if acts[0] == "TALK" else acts[0]
                assert r["intent"] == want, r
            else:
                assert 2 <= len(acts) <= 4 and r["intent"] == "COMPOSITE", r


def test_args_shape_names_and_values(goals):
    for rows in goals.values():
        for r in rows:
            goal, args = r["goal"], r["args"]
            assert isinstance(args, list) and len(args) == len(r["actions"]), r
            for step, (tool, a) in enumerate(zip(r["actions"], args), 1):
                assert isinstance(a, dict), r
                allowed = TOOL_ARGS.get(tool, set())
                assert set(a) <= allowed, (r, tool, a)
                required = allowed - OPTIONAL_ARGS.get(tool, set())
                assert required <= set(a), (r, tool, a)
                for value in a.values():
                    if isinstance(value, str):
                        assert value and value in goal, (goal, value)
                    else:
                        assert isinstance(value, dict) and set(value) == {"from", "pick"}, r
                        k, n = value["from"], value["pick"]
                        assert isinstance(k, int) and isinstance(n, int), r
                        assert 1 <= k < step and n >= 1, (r, step, value)


def test_spans_of_one_step_do_not_overlap(goals):
    # Spans are located by their first occurrence; two args of one step must not collide.
    for rows in goals.values():
        for r in rows:
            for a in r["args"]:
                spans = sorted((r["goal"].find(v), r["goal"].find(v) + len(v))
                               for v in a.values() if isinstance(v, str))
                for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
                    assert e0 <= s1, (r["goal"], a)


def test_goal_coverage(goals):
    train = goals["train"]
    singles = collections.Counter(r["actions"][0] for r in train if len(r["actions"]) == 1)
    for tool in TOOLS:
        assert singles[tool] >= (25 if tool == "TALK" else 12), (tool, singles[tool])
    for tool in ARG_TOOLS:
        assert singles[tool] >= 16, (tool, singles[tool])
    for name, rows in goals.items():
        lengths = collections.Counter(len(r["actions"]) for r in rows)
        assert all(lengths[n] > 0 for n in (2, 3, 4)), (name, lengths)
        intents = {r["intent"] for r in rows}
        assert intents == set(INTENTS), (name, set(INTENTS) - intents)
        refs = sum(isinstance(v, dict) for r in rows for a in r["args"] for v in a.values())
        assert refs > 0, name


def test_goals_unique_and_disjoint(goals):
    for name, rows in goals.items():
        texts = [r["goal"] for r in rows]
        dup = [t for t, c in collections.Counter(texts).items() if c > 1]
        assert not dup, (name, dup)
    train = {r["goal"].casefold() for r in goals["train"]}
    both = [r["goal"] for r in goals["held_out"] if r["goal"].casefold() in train]
    assert not both, both


# ---------------------------------------------------------------- talk

def test_talk_fields_and_categories(talk):
    fields = {"train": {"prompt", "response", "category"}, "paraphrases": {"prompt", "response", "category"},
              "held_out": {"prompt", "reference", "category"},
              "gallery": {"prompt", "category"}}
    for name, rows in talk.items():
        for r in rows:
            assert set(r) == fields[name], (name, r)
            assert all(isinstance(v, str) and v.strip() for v in r.values()), (name, r)
            assert r["category"] in TALK_CATEGORIES, (name, r)


def test_talk_counts(talk):
    assert len(talk["train"]) >= 640
    assert len(talk["held_out"]) >= 64
    assert len(talk["gallery"]) >= 64
    per_cat = collections.Counter(r["category"] for r in talk["train"])
    for cat in TALK_CATEGORIES:
        assert per_cat[cat] >= 40, (cat, per_cat[cat])
    assert len({r["category"] for r in talk["gallery"]}) >= 10
    assert len({r["category"] for r in talk["held_out"]}) == len(TALK_CATEGORIES)


def test_talk_lengths(talk):
    for name, rows in talk.items():
        for r in rows:
            assert len(r["prompt"]) < 120, (name, r["prompt"])
            for key in ("response", "reference"):
                if key in r:
                    assert len(r[key]) < 300, (name, r[key])


def test_talk_no_duplicates(talk):
    train = talk["train"]
    prompts = collections.Counter(r["prompt"].casefold() for r in train)
    responses = collections.Counter(r["response"] for r in train)
    assert not [p for p, c in prompts.items() if c > 1]
    assert not [p for p, c in responses.items() if c > 1]
    for name in ("held_out", "gallery"):
        ps = collections.Counter(r["prompt"].casefold() for r in talk[name])
        assert not [p for p, c in ps.items() if c > 1], name


def test_talk_held_out_references_training(talk):
    by_response = {r["response"]: r for r in talk["train"]}
    train_prompts = {r["prompt"].casefold() for r in talk["train"]}
    for r in talk["held_out"]:
        assert r["reference"] in by_response, r
        assert by_response[r["reference"]]["category"] == r["category"], r
        assert r["prompt"].casefold() not in train_prompts, r


def test_paraphrases_reword_training_prompts(talk):
    by_response = {r["response"]: r for r in talk["train"]}
    elsewhere = {r["prompt"].casefold() for name in ("train", "held_out", "gallery") for r in talk[name]}
    rows = talk["paraphrases"]
    assert len(rows) >= 1200
    assert len({r["prompt"].casefold() for r in rows}) == len(rows)
    for r in rows:
        assert r["response"] in by_response, r
        assert by_response[r["response"]]["category"] == r["category"], r
        assert r["prompt"].casefold() not in elsewhere, r


def test_gallery_mixes_seen_and_new(talk):
    train_prompts = {r["prompt"] for r in talk["train"]}
    seen = sum(r["prompt"] in train_prompts for r in talk["gallery"])
    new = len(talk["gallery"]) - seen
    assert seen >= 16 and new >= 16, (seen, new)
