"""Byte tokenizer, label space and plan vocabulary: the contracts other parts rely on."""

import json
from pathlib import Path

import numpy as np
import pytest

from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import clauses
from gestalt_jax.text import labels
from gestalt_jax.text import ordinals
from gestalt_jax.text import plan_vocab as pv

DATASETS = Path(__file__).resolve().parents[1] / "datasets" / "goals"
TEXTS = [
    "hello, world",
    "ship it 🚀🎉 now",
    "修复测试 and 日本語のテキスト",
    "def f(x):\n\treturn x + 1  # tab\r\n",
    "",
]


# --- labels -----------------------------------------------------------------------


def test_label_space_sizes_and_order():
    assert len(labels.TOOLS) == 15 and labels.TOOLS[0] == "TALK"
    assert labels.ACTIONS[0] == "END" and len(labels.ACTIONS) == 16
    assert len(labels.INTENTS) == 16
    assert labels.INTENTS[0] == "CONVERSATION" and labels.INTENTS[-1] == "COMPOSITE"
    assert set(labels.TOOL_ARGS) == set(labels.TOOLS)
    used = {a for args in labels.TOOL_ARGS.values() for a in args}
    assert used == set(labels.ARG_NAMES)


def test_label_index_error_names_label():
    assert labels.index(labels.TOOLS, "SEARCH") == 5
    with pytest.raises(ValueError, match="'GREP'.*SEARCH"):
        labels.index(labels.TOOLS, "GREP")


# --- bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
def test_bytes_round_trip(text):
    ids = byte_tok.encode(text)
    assert all(0 <= i < 256 for i in ids)
    assert byte_tok.decode(ids) == text
    assert byte_tok.decode([byte_tok.BOS] + ids + [byte_tok.EOS, 65, byte_tok.PAD]) == text


def test_decode_replaces_invalid_utf8():
    assert byte_tok.decode([0xFF, 65]) == "\ufffdA"


def test_encode_left_pads_left_and_keeps_end():
    out = byte_tok.encode_left(["ab", "read the file src/main.py"], 8)
    assert out.dtype == np.int32 and out.shape == (2, 8)
    assert out[0].tolist() == [byte_tok.PAD] * 6 + [97, 98]
    assert byte_tok.decode(out[1]) == "/main.py"
    assert byte_tok.encode_left([""], 3).tolist() == [[byte_tok.PAD] * 3]


def test_encode_right_pads_right_and_truncates_end():
    out = byte_tok.encode_right(["ab", "abcdef"], 4)
    assert out.dtype == np.int32
    assert out.tolist() == [[byte_tok.BOS, 97, 98, byte_tok.PAD], [byte_tok.BOS, 97, 98, 99]]
    eos = byte_tok.encode_right(["ab"], 4, bos=False, eos=True)
    assert eos.tolist() == [[97, 98, byte_tok.EOS, byte_tok.PAD]]


def test_decoder_pair_shift_and_weights():
    inputs, targets, weights = byte_tok.decoder_pair(["ab", "abcdef"], 4)
    P, B, E = byte_tok.PAD, byte_tok.BOS, byte_tok.EOS
    assert inputs.tolist() == [[B, 97, 98, P], [B, 97, 98, 99]]
    assert targets.tolist() == [[97, 98, E, P], [97, 98, 99, 100]]
    assert weights.dtype == np.float32
    assert weights.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    # Teacher forcing: the target at t is the input at t + 1.
    np.testing.assert_array_equal(inputs[1, 1:], targets[1, :-1])


# --- plan vocabulary --------------------------------------------------------------


def test_vocab_dense_and_unique():
    names = [pv.token_name(i) for i in range(pv.VOCAB_SIZE)]
    assert len(set(names)) == pv.VOCAB_SIZE
    assert [pv.token_id(n) for n in names] == list(range(pv.VOCAB_SIZE))
    assert (pv.PAD, pv.BOS, pv.EOS) == (0, 1, 2)
    assert [pv.token_name(i) for i in pv.TOOL_IDS] == list(labels.TOOLS)
    assert set(pv.ARG_IDS) == set(labels.ARG_NAMES)
    assert len(pv.STEP_REF_IDS) == labels.MAX_STEPS and len(pv.PICK_IDS) == 16
    assert 30 <= len(pv.WORD_IDS) <= 60
    assert pv.token_name(pv.CHAR_OFFSET + ord("a")) == "a"
    assert pv.token_name(pv.CHAR_OFFSET + 0x0A) == "<0x0A>"
    with pytest.raises(ValueError, match="'NOPE'"):
        pv.token_id("NOPE")
    with pytest.raises(ValueError, match="outside"):
        pv.token_name(pv.VOCAB_SIZE)


def test_encode_prompt():
    ids = pv.encode_prompt("héllo")
    assert ids[0] == pv.BOS
    names = [pv.token_name(i) for i in ids]
    assert names[:7] == ["BOS", "G", "o", "a", "l", "<0x0A>", "C1"] and names[-7:] == ["CEND", "<0x0A>", "P", "l", "a", "n", "<0x0A>"]
    chars = bytes(i - pv.CHAR_OFFSET for i in ids if pv.CHAR_OFFSET <= i < pv.CHAR_OFFSET + 256)
    assert chars.decode() == "Goal\nhéllo\nPlan\n"


def test_encode_prompt_marks_each_clause():
    ids = pv.encode_prompt('run the tests, then grep "a, b" and open it')
    marks = [pv.token_name(i) for i in ids if i in pv.CLAUSE_IDS or i == pv.CEND]
    assert marks == ["C1", "C2", "C3", "CEND"]  # the quoted comma is not a cut
    text = "".join(pv.token_name(i) if i in pv.CLAUSE_IDS else chr(i - pv.CHAR_OFFSET)
                   for i in ids[6:ids.index(pv.CEND)])
    assert text == 'C1run the tests, then C2grep "a, b" and C3open it'


@pytest.mark.parametrize("goal, requests", [
    ("Enumerate pkg/storage then display the second entry", ["Enumerate pkg/storage", "display the second entry"]),
    ("Is (c+d)^2 equal to c^2+2*c*d+d^2? Afterwards have Lean check its proofs too",
     ["Is (c+d)^2 equal to c^2+2*c*d+d^2", "have Lean check its proofs"]),
    ("Benchmark first, retrain second, benchmark third", ["Benchmark", "retrain", "benchmark"]),
    ('grep "a, then b" and open it -> run the tests', ['grep "a, then b"', "open it", "run the tests"]),
    ("run the tests", ["run the tests"]),
    ("and then, finally.", []),
])
def test_requests_are_the_clauses_without_their_joining_words(goal, requests):
    assert clauses.requests(goal) == requests


@pytest.mark.parametrize("goal, in_order", [
    ("check the build, then run the tests", True),
    ("Benchmark first, retrain second, benchmark third", True),
    ('search for "before" and open the first hit', True),  # quoted text and a pick do not count
    ("before you run the tests, make sure it compiles", False),
    ("train the model, but run the tests first", False),
    ("fix the tests, but first remind me what I noted", False),
    ("evaluate prior to training", False),
])
def test_in_order_says_whether_the_requests_run_as_written(goal, in_order):
    assert clauses.in_order(goal) is in_order


@pytest.mark.parametrize("goal, order", [
    ("check the build, then run the tests", ["check the build", "run the tests"]),
    ("lint the docs and check the build, but first open README.md", ["open README.md", "lint the docs", "check the build"]),
    ("train the model, but run the tests first", ["run the tests", "train the model"]),
    ("Evaluate checkpoint 33500, but show `token/web/wynch.h` first", ["show `token/web/wynch.h`", "Evaluate checkpoint 33500"]),
    ("run the build, but before that check the docs", ["check the docs", "run the build"]),
    ('grep "x, but first y" and open it', ['grep "x, but first y"', "open it"]),  # quoted text does not count
    # more than one request put first, or another order: left to the planner
    ("fix the tests, but before that run them; afterwards check the build", None),
    ("before you run the tests, make sure it compiles", None),
    ("train, but first eval, but first lint", None),
    ("search for TODO, but only open the first", None),  # a pick, not an order
])
def test_run_order_puts_a_request_that_asks_to_go_first_first(goal, order):
    assert clauses.run_order(goal) == order


@pytest.mark.parametrize("goal, picks", [
    ("Peek inside vendor/ and display entry number two", [2]),
    ("Look for `async def handle_` and show me match three", [3]),
    ("grep for 'unwrap()' and open hits 1 and 2", [1, 2]),
    ("just search for `segmentation fault`; open the top two results", [1, 2]),
    ("list src/models, open the first two files", [1, 2]),
    ("list files in lib/, open the second one", [2]),
    ("search for X, open the 4th and fifth hits, then remember the path of the first", [4, 5, 1]),
    ("Look for ^class in the code, and when that's done, open #2 and #4", [2, 4]),
    ("run make test - remember failure #5, please", [5]),
    ("grep a and b, then open the top hit of the second search", [1]),  # "the second search" is a step
    ("First the Lean proofs, then save the verdict", []),  # an order word
    ("1/ compile main 2/ validate the proofs 3/ remember the result 4/ verify", []),  # list markers
    ("#1 list the files in .config #2 read file #4 #3 keep the path in mind", []),  # a marker, or file 4: left open
    ('search for "the second hit" and open it', []),  # quoted text
    ("Ls packages/tpgdaspo and open the fifth and seventh filse", [5, 7]),
])
def test_ordinals_are_the_hits_a_goal_names_in_order(goal, picks):
    assert ordinals.picks(goal) == picks


def test_ordinals_agree_with_the_picks_of_the_goal_files():
    # The plan decoder pins picks to these numbers: on the goals the models learn from and are
    # scored on they must be the labelled picks (a goal that names none is left to the planner).
    wrong = {}
    for name in ("train", "held_out", "synthetic"):
        for line in (DATASETS / f"{name}.jsonl").read_text().splitlines():
            r = json.loads(line)
            labelled = [v["pick"] for a in r.get("args") or [] for v in a.values() if isinstance(v, dict)]
            named = ordinals.picks(r["goal"])
            if labelled and labelled[: len(named)] != named[: len(labelled)]:
                wrong.setdefault(name, []).append((r["goal"], labelled, named))
    assert "train" not in wrong and "held_out" not in wrong, wrong
    assert len(wrong.get("synthetic", [])) <= 10, wrong["synthetic"]


def test_visible_goal_keeps_the_longest_end_that_fits():
    goal = "hey, " * 40 + "run the tests and then fix them"
    for limit in (30, 60, 100):
        seen = pv.visible_goal(goal, limit)
        assert goal.endswith(seen) and len(pv.encode_prompt(seen)) <= limit
        longer = goal[-len(seen) - 1:]
        assert len(pv.encode_prompt(longer)) > limit


def _round_trip(steps, think=None, with_prompt=True):
    ids = pv.encode_plan(steps, think)
    assert ids[-2:] == [pv.EOP, pv.EOS]
    full = (pv.encode_prompt("some goal") if with_prompt else []) + ids + [pv.PAD] * 3
    assert pv.decode_plan(full) == {"steps": steps, "think": think}
    return ids


def test_plan_round_trip_one_step():
    ids = _round_trip([{"tool": "RUN_TESTS", "args": {}}])
    assert ids == [pv.STEP, pv.TOOL_IDS[1], pv.EOP, pv.EOS]


def test_plan_round_trip_three_steps_with_refs_and_spans():
    steps = [
        {"tool": "SEARCH", "args": {"pattern": "fn main() / größe 🚀"}},
        {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 3}}},
        {"tool": "PROVE_ALGEBRA", "args": {"lhs": "(a + b)^2", "rhs": {"from": 2, "pick": 16}}},
    ]
    ids = _round_trip(steps)
    assert pv.QUOTE in ids and pv.FROM in ids and pv.PICK_IDS[15] in ids


def test_plan_round_trip_think_block():
    steps = [
        {"tool": "LIST_FILES", "args": {"path": "src/"}},
        {"tool": "MEMORY_ADD", "args": {"text": "注意 the build"}},
    ]
    ids = _round_trip(steps, think=["first", "list", "files", "then", "remember"])
    assert ids[0] == pv.THINK
    _round_trip(steps, think=[], with_prompt=False)


@pytest.mark.parametrize(
    "steps, think, message",
    [
        ([], None, "no steps"),
        ([{"tool": "GREP", "args": {}}], None, "step 1: unknown tool 'GREP'"),
        ([{"tool": "SEARCH", "args": {"path": "x"}}], None, "step 1: tool SEARCH.*'path'"),
        (
            [{"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 1}}}],
            None,
            r"step 1 \(path\): reference from=1",
        ),
        (
            [{"tool": "TALK", "args": {}}, {"tool": "READ_FILE", "args": {"path": {"from": 2, "pick": 1}}}],
            None,
            r"step 2 \(path\): reference from=2 must be an earlier step",
        ),
        (
            [{"tool": "TALK", "args": {}}, {"tool": "READ_FILE", "args": {"path": {"from": 1, "pick": 17}}}],
            None,
            r"step 2 \(path\): pick=17",
        ),
        ([{"tool": "SEARCH", "args": {"pattern": ""}}], None, "step 1.*empty text span"),
        ([{"tool": "SEARCH", "args": {"pattern": 3}}], None, "step 1.*value must be"),
        ([{"tool": "TALK", "args": {}}] * 9, None, "step 9: plan has 9 steps, at most 8"),
        ([{"tool": "TALK", "args": {}}], ["need", "xyzzy"], "think.*'xyzzy'"),
    ],
)
def test_encode_plan_validation(steps, think, message):
    with pytest.raises(ValueError, match=message):
        pv.encode_plan(steps, think)


def _ids(*names):
    return [pv.token_id(n) for n in names]


@pytest.mark.parametrize(
    "ids, message",
    [
        (_ids("EOP", "EOS"), "position 2: expected STEP, got end of ids"),
        (_ids("STEP", "S1"), "position 1: expected a tool, got token 'S1'"),
        (_ids("STEP", "SEARCH", "ARG:path"), "position 2: expected an argument of SEARCH"),
        (
            _ids("STEP", "PROVE_ALGEBRA", "ARG:rhs", "QUOTE", "x", "ENDQUOTE", "ARG:lhs"),
            "position 6: expected an argument of PROVE_ALGEBRA",
        ),
        (_ids("STEP", "SEARCH", "ARG:pattern", "QUOTE", "ENDQUOTE"), "position 4: expected a char"),
        (_ids("STEP", "SEARCH", "ARG:pattern", "QUOTE", "a", "EOP"), "position 5: expected char or ENDQUOTE"),
        (
            _ids("STEP", "READ_FILE", "ARG:path", "FROM", "S1"),
            "position 4: expected a step ref, but step 1 has no earlier step",
        ),
        (
            _ids("STEP", "TALK", "STEP", "READ_FILE", "ARG:path", "FROM", "S2"),
            "position 6: expected a step ref S1..S1, got token 'S2'",
        ),
        (
            _ids("STEP", "TALK", "STEP", "READ_FILE", "ARG:path", "FROM", "S1", "PICK", "S1"),
            "position 8: expected a pick index",
        ),
        (_ids("THINK", "need", "TALK"), "position 2: expected a lexicon word or ENDTHINK"),
        (_ids("STEP", "TALK", "EOP"), "position 3: expected EOS, got end of ids"),
        (_ids("STEP", "TALK", "ENDQUOTE"), "position 2: expected STEP, an argument or EOP"),
        (_ids(*["STEP", "TALK"] * 9, "EOP", "EOS"), "position 16: expected EOP .at most 8"),
    ],
)
def test_decode_plan_errors_name_position_and_token(ids, message):
    with pytest.raises(ValueError, match=message):
        pv.decode_plan(ids)


def test_loss_weights():
    prompt = pv.encode_prompt("run the tests")
    ids = prompt + pv.encode_plan([{"tool": "RUN_TESTS", "args": {}}]) + [pv.PAD] * 2
    w = pv.loss_weights(np.array(ids), len(prompt))
    P = len(prompt)
    assert w.dtype == np.float32 and w.shape == (len(ids),)
    assert (w[:P] == 0).all()
    np.testing.assert_allclose(w[P:], [0.1, 1, 1, 1, 0, 0])
    batch = pv.loss_weights(np.array([ids, ids]), np.array([P, P + 1]))
    assert batch.shape == (2, len(ids)) and batch[1, P] == 0 and batch[0, P] == np.float32(0.1)
    # A later STEP decides between going on and ending the plan: full weight.
    two = prompt + pv.encode_plan([{"tool": "RUN_TESTS", "args": {}}, {"tool": "FIX_TESTS", "args": {}}])
    np.testing.assert_allclose(pv.loss_weights(np.array(two), P)[P:], [0.1, 1, 1, 1, 1, 1])
