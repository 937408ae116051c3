"""The FSM-constrained planner decode: every decoded plan parses, the data's plans are accepted."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax.data import examples
from gestalt_jax.infer import plan_fsm as fsm
from gestalt_jax.text import algebra, labels
from gestalt_jax.text import plan_vocab as pv

TRAIN = Path(__file__).resolve().parents[1] / "datasets" / "goals" / "train.jsonl"
B = 32


def _random_logits(carry, token_B, t):
    key, bias_V = carry
    return carry, jax.random.normal(jax.random.fold_in(key, t), (B, pv.VOCAB_SIZE)) + bias_V


def _decode_random(seed: int, max_new: int, favour: tuple[int, ...] = ()) -> np.ndarray:
    # Pure noise keeps quotes and THINK open until the budget closes them; favouring
    # some tokens (e.g. all non-char, non-word ones, or STEP and FROM) yields plans with
    # more steps and references.
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[list(favour)] = 3.0
    carry = (jax.random.key(seed), jnp.asarray(bias_V))
    last_B = jnp.full((B,), pv.CHAR_OFFSET + ord("\n"), jnp.int32)
    return np.asarray(fsm.constrained_greedy(_random_logits, carry, last_B, max_new))


def _walk(ids) -> list[int]:
    """States visited from START over ids; AssertionError naming the first illegal token."""
    states = [fsm.START]
    for pos, tok in enumerate(ids):
        state = states[-1]
        assert fsm.LEGAL[state, tok], f"pos {pos}: {pv.token_name(tok)} illegal in {fsm.state_name(state)}"
        states.append(int(fsm.NEXT_STATE[state, tok]))
    return states


def _legal_after(prefix, tok) -> bool:
    return bool(fsm.LEGAL[_walk(prefix)[-1], tok])


@pytest.mark.parametrize("max_new", [fsm.MIN_NEW, 5, 7, 12, 40])
@pytest.mark.parametrize("favour", [(), tuple(range(pv.CHAR_OFFSET)), (pv.STEP, pv.FROM)])
def test_random_logits_always_parse(max_new, favour):
    for seed in range(4):
        ids_BxT = _decode_random(seed, max_new, favour)
        assert ids_BxT.shape == (B, max_new)
        for ids in ids_BxT.tolist():
            end = ids.index(pv.EOS)  # EOS is always emitted within the budget
            assert set(ids[end + 1 :]) <= {pv.PAD}
            plan = fsm.parse(ids)
            assert 1 <= len(plan["steps"]) <= labels.MAX_STEPS
            for step, s in enumerate(plan["steps"], start=1):
                assert set(s["args"]) <= set(labels.TOOL_ARGS[s["tool"]])
                for value in s["args"].values():
                    if isinstance(value, dict):
                        assert 1 <= value["from"] < step
            assert _walk(ids)[-1] == fsm.DONE


def test_random_logits_reach_long_plans():
    ids_BxT = _decode_random(0, 96, (pv.STEP, pv.FROM))
    steps = [len(fsm.parse(ids)["steps"]) for ids in ids_BxT.tolist()]
    refs = sum(pv.FROM in ids for ids in ids_BxT.tolist())
    assert max(steps) == labels.MAX_STEPS and refs > 0


_GOALS = (["grep for parse_config in src/", "read ./docs/README.md please", "zz", "prove x+1 = 1+x",
           "recall what I said about the ñandú 🐦", "find Eve's notes", "Hunt for BOTH Foo AND bar, then Andy",
           "search 'and' plus `then`"] * 4)[: B - 2] + ["a", "   "]


def _starts_at_a_word(goal: bytes, span: bytes) -> bool:
    """Whether `span` occurs in `goal` at a byte that starts no white space and continues no word
    (letters, digits, "_", UTF-8 multi-byte characters; an apostrophe between word bytes joins),
    and starts no joining word ("and", "both", "then", "also", "plus", whole, in any case) but
    right after a quote mark."""
    word = lambda b: chr(b).isascii() and (chr(b).isalnum() or chr(b) == "_") or b >= 0x80
    joiner = lambda j: any(goal[j:j + len(w)].lower() == w and not (j + len(w) < len(goal) and word(goal[j + len(w)]))
                           for w in (b"and", b"both", b"then", b"also", b"plus"))

    def start(j):
        if goal[j:j + 1].isspace() or (joiner(j) and not (j and goal[j - 1] in b"'\"`")):
            return False
        if j == 0:
            return True
        return not word(goal[j - 1]) and not (goal[j - 1] == ord("'") and j >= 2 and word(goal[j - 2]))

    return any(goal.startswith(span, j) and (start(j) or goal.isspace()) for j in range(len(goal)))


@pytest.mark.parametrize("max_new", [12, 60])
def test_random_logits_quote_only_spans_of_the_goal(max_new):
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[[pv.QUOTE, pv.ENDQUOTE, pv.STEP] + [pv.ARG_IDS[a] for a in labels.ARG_NAMES]] = 3.0
    goal_BxG = jnp.asarray(fsm.goal_bytes(_GOALS))
    quoted = paths = 0
    for seed in range(4):
        carry = (jax.random.key(seed), jnp.asarray(bias_V))
        ids_BxT = fsm.constrained_greedy(_random_logits, carry, jnp.zeros((B,), jnp.int32), max_new, goal_BxG)
        for goal, ids in zip(_GOALS, np.asarray(ids_BxT).tolist()):
            assert _walk(ids)[-1] == fsm.DONE
            for p, tok in enumerate(ids):
                if tok == pv.QUOTE:
                    end = ids.index(pv.ENDQUOTE, p)
                    span = bytes(i - pv.CHAR_OFFSET for i in ids[p + 1 : end])
                    assert _starts_at_a_word(goal.encode(), span), (goal, span)
                    if ids[p - 1] == pv.ARG_IDS["path"]:  # a path is one word, but in a goal of white space
                        assert goal.isspace() or not any(chr(b).isspace() for b in span), (goal, span)
                        paths += 1
                    quoted += 1
    assert quoted > 0 and paths > 0  # the properties were exercised


@pytest.mark.parametrize("tool, arg, spaced", [("LIST_FILES", "path", False), ("SEARCH", "pattern", True)])
def test_a_path_is_one_word_of_the_goal(tool, arg, spaced):
    # Logits that want the tool, its argument and long spans, white space above all: a path stops at
    # its word's end ("pkg/storage then display" -> "pkg/storage"); a pattern runs on through spaces.
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[[pv.TOOL_IDS[labels.TOOLS.index(tool)], pv.ARG_IDS[arg], pv.QUOTE]] = 5.0
    bias_V[pv.STEP] = 4.0  # after the argument
    bias_V[pv.CHAR_OFFSET: pv.CHAR_OFFSET + 256] = 3.0
    bias_V[pv.CHAR_OFFSET + ord(" ")] = 6.0
    goals = ["Enumerate pkg/storage then display whatever comes first", "peek into the assets directory"] * (B // 2)
    ids_BxT = fsm.constrained_greedy(lambda c, tok, t: (c, jnp.broadcast_to(bias_V, (B, pv.VOCAB_SIZE))), None,
                                     jnp.zeros((B,), jnp.int32), 60, jnp.asarray(fsm.goal_bytes(goals)))
    # (the first step's: a later span may not start in an earlier one, test_spans_of_a_plan_do_not_overlap)
    spans = [fsm.parse(ids)["steps"][0]["args"][arg] for ids in np.asarray(ids_BxT).tolist()]
    assert len(spans) == B and all((" " in span) == spaced for span in spans), spans


def test_spans_of_a_plan_do_not_overlap():
    # Logits that want READ_FILE three times and "tox.ini" each time: the first takes it, the next
    # ones start where no earlier span lies ("Open setup.cfg, tox.ini and noxfile.py").
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[[pv.TOOL_IDS[labels.TOOLS.index("READ_FILE")], pv.ARG_IDS["path"], pv.QUOTE]] = 9.0
    bias_V[pv.STEP] = 4.0
    bias_V[pv.CHAR_OFFSET: pv.CHAR_OFFSET + 256] = 3.0
    bias_V[[pv.CHAR_OFFSET + ord(c) for c in "tox.ini"]] = 6.0
    bias_V[pv.CHAR_OFFSET + ord("t")] = 7.0
    logits_fn = lambda c, tok, t: (c, jnp.broadcast_to(bias_V, (B, pv.VOCAB_SIZE)))  # noqa: E731
    goal_BxG = jnp.asarray(fsm.goal_bytes(["Open setup.cfg, tox.ini and noxfile.py"] * B))
    guide = fsm.guidance(["COMPOSITE"] * B, [["READ_FILE"] * 3] * B)
    ids_BxT = fsm.constrained_greedy(logits_fn, None, jnp.zeros((B,), jnp.int32), 80, goal_BxG, guide=guide)
    for ids in np.asarray(ids_BxT).tolist():
        paths = [step["args"]["path"] for step in fsm.parse(ids)["steps"]]
        assert paths[0] == "tox.ini" and "tox.ini" not in paths[1:] and len(paths) == 3, paths


def test_a_side_of_an_identity_is_what_the_tool_parses():
    # Logits that want PROVE_ALGEBRA, its left side and long spans of "h^2-k^2 and ...", of
    # "(k + s)^3" and of white space: a side stops before a word of the goal ("and", "equals"), where
    # the tool would refuse it, and runs on over an expression's spaces.
    prove = pv.TOOL_IDS[labels.TOOLS.index("PROVE_ALGEBRA")]
    bias_2xV = np.zeros((2, pv.VOCAB_SIZE), np.float32)
    bias_2xV[:, [prove, pv.ARG_IDS["lhs"], pv.QUOTE]] = 9.0
    bias_2xV[:, pv.EOP] = 4.0
    bias_2xV[:, pv.CHAR_OFFSET: pv.CHAR_OFFSET + 256] = 3.0
    for row, (first, second, rest) in enumerate([("h", "^", "2-k and"), ("(", "k", " +s)^3equal")]):
        bias_2xV[row, [pv.CHAR_OFFSET + ord(c) for c in rest]] = 6.0
        bias_2xV[row, [pv.CHAR_OFFSET + ord(first), pv.CHAR_OFFSET + ord(second)]] = 8.0, 7.0
    goals = ["Check that h^2-k^2 and (h-k)*(h+k) agree", "Prove (k + s)^3 equals it"] * (B // 2)
    goal_BxG = fsm.goal_bytes(goals)
    logits_fn = lambda c, tok, t: (c, jnp.asarray(np.tile(bias_2xV, (B // 2, 1))))  # noqa: E731

    def lhs(sides_BxG=None):
        ids_BxT = fsm.constrained_greedy(logits_fn, None, jnp.zeros((B,), jnp.int32), 60, jnp.asarray(goal_BxG),
                                         sides_BxG=sides_BxG)
        return [fsm.parse(ids)["steps"][0]["args"]["lhs"] for ids in np.asarray(ids_BxT).tolist()]

    ruled = lhs(jnp.asarray(fsm.side_positions(goal_BxG)))
    assert [s.strip() for s in ruled] == ["h^2-k^2", "(k + s)^3"] * (B // 2), ruled
    assert all(algebra.side_positions(s.encode()).all() for s in ruled)
    assert all(" and " in s or "equals" in s for s in lhs()), lhs()  # what the rule stops
    # A goal with nothing a side may hold still gets a side (the rule gives way), and a plan.
    none_BxG = fsm.goal_bytes(["Prove it"] * B)
    ids_BxT = fsm.constrained_greedy(logits_fn, None, jnp.zeros((B,), jnp.int32), 30, jnp.asarray(none_BxG),
                                     sides_BxG=jnp.asarray(fsm.side_positions(none_BxG)))
    assert all(_walk(ids)[-1] == fsm.DONE for ids in np.asarray(ids_BxT).tolist())


def _biased_plans(guide, max_new: int, seeds: int):
    """Guided plans (lists of ids, one per row) under random logits biased towards EOP, then towards
    STEP (and chars), `seeds` draws each; every one is checked to reach DONE."""
    for favour in (pv.EOP, pv.STEP):
        bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
        bias_V[[favour] + list(range(pv.CHAR_OFFSET))] = 3.0
        for seed in range(seeds):
            carry = (jax.random.key(seed), jnp.asarray(bias_V))
            rows = np.asarray(fsm.constrained_greedy(_random_logits, carry, jnp.zeros((B,), jnp.int32), max_new,
                                                     guide=guide)).tolist()
            for ids in rows:
                assert _walk(ids)[-1] == fsm.DONE
            yield rows


_INTENTS = [None, "COMPOSITE", "CONVERSATION", "SEARCH", "PROVE_ALGEBRA", "TRAIN", "READ_FILE", "COMPOSITE"] * (B // 8)


@pytest.mark.parametrize("max_new", [fsm.MIN_NEW, 9, 40])
def test_random_logits_follow_the_intent_guidance(max_new):
    # Favouring EOP pulls every row towards a one-step plan, STEP towards eight steps: the
    # guidance must win over both wherever the budget leaves room, and the plan must parse.
    guide = fsm.guidance(_INTENTS)
    composite_lengths = set()
    for rows in _biased_plans(guide, max_new, seeds=3):
        for intent, ids in zip(_INTENTS, rows):
            tools = [s["tool"] for s in fsm.parse(ids)["steps"]]
            if intent not in (None, "COMPOSITE"):  # one step of the intent's tool fits any budget
                assert tools == [labels.TOOLS[labels.INTENTS.index(intent)]], (intent, tools)
            elif intent == "COMPOSITE":
                composite_lengths.add(min(len(tools), 2))
    # The planner's logits decide a COMPOSITE plan's length (where the budget leaves room for two steps).
    assert composite_lengths == ({1, 2} if max_new > fsm.MIN_NEW else {1})
    tools, lo, hi, picks = guide
    assert (picks == 0).all()  # no goal: no pick pinned
    # COMPOSITE leaves the plan to the grammar, as no intent does: the planner may end after one step.
    assert (tools[:3, 0].tolist(), lo[:3].tolist(), hi[:3].tolist()) == ([-1, -1, 0], [1, 1, 1], [8, 8, 1])
    assert (tools[:, 1:] == -1).all()
    with pytest.raises(ValueError, match="unknown label 'BOGUS'"):
        fsm.guidance(["BOGUS"])


_STEPS = [["SEARCH", "READ_FILE", "RUN_TESTS"], None, ["CHECK_BUILD", "RUN_TESTS"], ["TALK", "TALK", "EVAL", "TRAIN"],
          ["LEAN_SUITE", "PROVE_ALGEBRA", "MEMORY_ADD", "DOCS_LINT", "FIX_TESTS", "LIST_FILES", "SEARCH", "TRAIN"],
          None, ["MEMORY_SEARCH", "EVAL"], ["PATCH_DRY_RUN", "CHECK_BUILD"]] * (B // 8)


@pytest.mark.parametrize("max_new", [fsm.MIN_NEW, 40, 160])
def test_random_logits_follow_the_tools_of_each_step(max_new):
    # A goal's fixed steps give every step's tool and the plan's length, against logits that favour
    # ending at once or going on: where the budget leaves room the plan is those tools exactly;
    # where it does not, it still parses and starts with them.
    intents = ["COMPOSITE" if s else "SEARCH" for s in _STEPS]
    guide = fsm.guidance(intents, _STEPS)
    for rows in _biased_plans(guide, max_new, seeds=2):
        for fixed, ids in zip(_STEPS, rows):
            tools = [s["tool"] for s in fsm.parse(ids)["steps"]]
            if fixed is None:
                assert tools == ["SEARCH"]
            elif max_new == 160:
                assert tools == fixed, (fixed, tools)
            else:
                assert tools == fixed[: len(tools)], (fixed, tools)
    with pytest.raises(ValueError, match="at most 8"):
        fsm.guidance(["COMPOSITE"], [["TALK"] * 9])


@pytest.mark.parametrize("favoured, fixed, want", [
    ("RUN_TESTS", ["RUN_TESTS", "FIX_TESTS"], ["RUN_TESTS", "FIX_TESTS"]),  # the open clause gave no step
    ("SEARCH", ["RUN_TESTS", "FIX_TESTS"], ["SEARCH", "RUN_TESTS", "FIX_TESTS"]),  # a step of another tool
    ("READ_FILE", ["READ_FILE", "FIX_TESTS"], ["READ_FILE", "READ_FILE", "FIX_TESTS"]),  # takes an argument
])
def test_an_open_step_given_the_next_steps_argument_less_tool_is_left_out(favoured, fixed, want):
    # "CI is red since this morning. Run the tests and fix whatever fails.": the first clause is
    # left to the planner, the others read as RUN_TESTS and FIX_TESTS. No built-in plan runs an
    # argument-less tool twice in a row, so a planner that picks RUN_TESTS for the open step means
    # the second clause's step; a tool that takes an argument may follow itself (two files read).
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[pv.TOOL_IDS[labels.TOOLS.index(favoured)]] = 9.0
    bias_V[[pv.EOP, pv.ENDQUOTE]] = 6.0  # end a plan wherever the guidance lets it, and a quote soon
    bias_V[pv.THINK] = -20.0  # no thoughts to run the budget out
    carry = (jax.random.key(0), jnp.asarray(bias_V))
    guide = fsm.guidance(["COMPOSITE"] * B, [[None] + fixed] * B)
    rows = np.asarray(fsm.constrained_greedy(_random_logits, carry, jnp.zeros((B,), jnp.int32), 80,
                                             guide=guide)).tolist()
    for ids in rows:
        assert [s["tool"] for s in fsm.parse(ids)["steps"]] == want


_PICKS = [[2], [3, 1], [], [16], [17, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9], [4], [5, 5]] * (B // 8)


@pytest.mark.parametrize("max_new", [40, 160])
def test_random_logits_pick_the_hits_the_goal_names(max_new):
    # Logits that favour FROM (every step from step 2 on takes an earlier result) and noise on the
    # numbers: a row's j-th pick is the j-th number its goal names, up to NUM_PICKS (a number past
    # it, and every one after, is the planner's); a row that names none keeps the noise's picks.
    guide = fsm.guidance(["COMPOSITE"] * B, [["SEARCH", "READ_FILE", "READ_FILE", "MEMORY_ADD"]] * B, _PICKS)
    bias_V = np.zeros(pv.VOCAB_SIZE, np.float32)
    bias_V[[pv.FROM, pv.ARG_IDS["path"], pv.ARG_IDS["text"], pv.QUOTE, pv.ENDQUOTE]] = 6.0
    free = set()
    for seed in range(3):
        carry = (jax.random.key(seed), jnp.asarray(bias_V))
        rows = np.asarray(fsm.constrained_greedy(_random_logits, carry, jnp.zeros((B,), jnp.int32), max_new,
                                                 guide=guide)).tolist()
        for named, ids in zip(_PICKS, rows):
            assert _walk(ids)[-1] == fsm.DONE
            got = [v["pick"] for s in fsm.parse(ids)["steps"] for v in s["args"].values() if isinstance(v, dict)]
            pinned = named[: len(got)]
            pinned = pinned[: next((j for j, n in enumerate(pinned) if n > pv.NUM_PICKS), len(pinned))]
            assert got[: len(pinned)] == pinned, (named, got)
            if not named:
                free.update(got)
    assert len(free) > 1  # the rows that name no hit are left to the logits
    assert max(ids.count(pv.PICK) for ids in rows) >= 3  # the property was exercised past the first pick


def test_fsm_is_small_and_shortest_plan_is_min_new():
    assert fsm.LEGAL.shape == fsm.NEXT_STATE.shape == (fsm.NUM_STATES, pv.VOCAB_SIZE)
    assert fsm.NUM_STATES < 1000
    assert fsm.MIN_NEW == len(pv.encode_plan([{"tool": "TALK"}]))
    assert np.flatnonzero(fsm.LEGAL[fsm.DONE]).tolist() == [pv.PAD]
    assert fsm.NEXT_STATE[fsm.DONE, pv.PAD] == fsm.DONE
    with pytest.raises(ValueError, match="max_new=3"):
        fsm.constrained_greedy(_random_logits, None, jnp.zeros((B,), jnp.int32), fsm.MIN_NEW - 1)


def test_fsm_accepts_every_training_plan():
    # Every built-in file, its paths through the path_* states, its sides through the side_* ones;
    # none of those paths holds white space, which the decode refuses inside a path
    # (test_a_path_is_one_word_of_the_goal), and every side lies where the decode lets a side copy
    # from (test_a_side_of_an_identity_is_what_the_tool_parses).
    records = [r for name in ("train", "synthetic", "held_out") for r in examples.load_goals(TRAIN.with_stem(name))]
    sides = several = 0
    for r in records:
        # and no span of a plan starts inside an earlier one's first occurrence
        # (test_spans_of_a_plan_do_not_overlap)
        spans = [v.encode() for step in examples.goal_steps(r) for v in step["args"].values() if isinstance(v, str)]
        taken = set()
        for span in spans:
            at = r["goal"].encode().find(span)
            assert at not in taken, (r["goal"], span)
            taken.update(range(at, at + len(span)))
        several += len(spans) > 1
        ids = pv.encode_plan(examples.goal_steps(r))
        assert _walk(ids)[-1] == fsm.DONE, r["goal"]
        paths = [step["args"]["path"] for step in examples.goal_steps(r) if isinstance(step["args"].get("path"), str)]
        assert not any(ch.isspace() for path in paths for ch in path), r["goal"]
        raw = r["goal"].encode()
        ok = fsm.side_positions(fsm.goal_bytes([r["goal"]]))[0]
        for step in examples.goal_steps(r):
            for side in (v for a, v in step["args"].items() if a in ("lhs", "rhs") and isinstance(v, str)):
                at = raw.find(side.encode())
                assert ok[at : at + len(side.encode())].all(), (r["goal"], side)
                sides += 1
    assert sides > 8000 and several > 6000
    think = pv.encode_plan([{"tool": "SEARCH", "args": {"pattern": "x"}}], think=["need", "find"])
    assert _walk(think)[-1] == fsm.DONE
    assert _walk(pv.encode_plan([{"tool": "TALK"}], think=[]))[-1] == fsm.DONE


def test_fsm_rejects_what_the_grammar_forbids():
    S, T = pv.STEP, pv.TOOL_IDS
    read, search, prove = (T[labels.TOOLS.index(t)] for t in ("READ_FILE", "SEARCH", "PROVE_ALGEBRA"))
    path, lhs, rhs = pv.ARG_IDS["path"], pv.ARG_IDS["lhs"], pv.ARG_IDS["rhs"]
    step2_from = [S, search, S, read, path, pv.FROM]
    assert _legal_after(step2_from, pv.STEP_REF_IDS[0])
    assert not _legal_after(step2_from, pv.STEP_REF_IDS[1])  # the current step
    assert not _legal_after(step2_from, pv.STEP_REF_IDS[2])  # a later step
    assert not _legal_after([S, read, path], pv.FROM)  # step 1 has nothing earlier
    assert not _legal_after([S, read], pv.ARG_IDS["pattern"])  # not an argument of READ_FILE
    assert not _legal_after([S, prove, rhs, pv.QUOTE, pv.CHAR_OFFSET + 1, pv.ENDQUOTE], lhs)  # order
    assert not _legal_after([S, read, path, pv.QUOTE, pv.CHAR_OFFSET + 1, pv.ENDQUOTE], path)  # twice
    quote = [S, read, path, pv.QUOTE, pv.CHAR_OFFSET + ord("a"), pv.ENDQUOTE]
    assert not _legal_after(quote, pv.ENDQUOTE)
    assert not _legal_after([S, read, path, pv.QUOTE], pv.ENDQUOTE)  # empty span
    assert not _legal_after([S], pv.EOS)
    assert not _legal_after([S, read], pv.EOS)  # EOP comes first
    assert not _legal_after([pv.THINK], pv.STEP)
    assert not _legal_after([], pv.EOP)
    assert not _legal_after([S, read] * labels.MAX_STEPS, S)
    # The parser agrees with the FSM on these.
    with pytest.raises(ValueError, match="S1..S1"):
        pv.decode_plan(step2_from + [pv.STEP_REF_IDS[1], pv.PICK, pv.PICK_IDS[0], pv.EOP, pv.EOS])
    with pytest.raises(ValueError, match="a tool"):
        pv.decode_plan([S, pv.EOS])


def test_preferred_plan_decodes_exactly():
    steps = [
        {"tool": "SEARCH", "args": {"pattern": "def main"}},
        {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 3}}},
        {"tool": "PROVE_ALGEBRA", "args": {"lhs": "x+1", "rhs": {"from": 2, "pick": 16}}},
        {"tool": "TALK", "args": {}},
    ]
    plan = pv.encode_plan(steps, think=["find", "the", "file"])
    max_new = len(plan) + 5
    want_T = np.array(plan + [pv.PAD] * 5, np.int32)
    # The preferred token wins by a margin the noise cannot close, one row per goal.
    noise_BxTxV = np.random.default_rng(0).normal(size=(B, max_new, pv.VOCAB_SIZE)).astype(np.float32)
    pref_BxTxV = noise_BxTxV + 10.0 * np.eye(pv.VOCAB_SIZE, dtype=np.float32)[want_T][None]

    def logits_fn(pref, token_B, t):
        return pref, pref[:, t]

    ids_BxT = fsm.constrained_greedy(logits_fn, jnp.asarray(pref_BxTxV), jnp.zeros((B,), jnp.int32), max_new)
    ids_BxT = np.asarray(ids_BxT)
    assert (ids_BxT == want_T).all()
    assert fsm.parse(ids_BxT[0]) == {"steps": steps, "think": ["find", "the", "file"]}
