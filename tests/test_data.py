"""Data layer: talk import formats, goal validation, grain pipelines, eval padding, mask checks."""

import functools
import json
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from gestalt_jax import config
from gestalt_jax.data import augment
from gestalt_jax.data import examples as ex
from gestalt_jax.data import formats, masks, packing, pipeline
from gestalt_jax.evals import talk
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels, plan_vocab
from gestalt_jax.train import phases

DATASETS = Path(__file__).parent.parent / "datasets"
TALK = DATASETS / "talk" / "train.jsonl"
GOALS = DATASETS / "goals" / "train.jsonl"
N_PREFIX = config.load_tier("test").brain.n_prefix


def write(tmp_path, name, lines):
    """A JSONL file of `lines`: objects are dumped, str and bytes written as they are."""
    raw = lambda x: x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x)).encode()
    path = tmp_path / name
    path.write_bytes(b"".join(raw(x) + b"\n" for x in lines))
    return path


def pairs_of(records):
    return [(r["prompt"], r["response"]) for r in records]


# ---------------------------------------------------------------- import formats

def test_prompt_response_with_extra_fields(tmp_path):
    path = write(tmp_path, "p.jsonl", [{"prompt": "hi", "response": "Hello.", "category": "greeting"},
                                        "", {"prompt": "bye", "response": "Bye."}])
    pairs = formats.load_talk_file(path)
    assert pairs_of(pairs) == [("hi", "Hello."), ("bye", "Bye.")]
    assert pairs[1]["_where"] == f"{path}:3"


def test_chat_with_system_turns_and_two_assistant_turns(tmp_path):
    chat = {"messages": [{"role": "system", "content": "Be terse."},
                         {"role": "user", "content": "What is 2+2?"},
                         {"role": "assistant", "content": "4."},
                         {"role": "system", "content": "Now be kind."},
                         {"role": "user", "content": "Thanks!"},
                         {"role": "assistant", "content": "Any time."},
                         {"role": "assistant", "content": "Follow-up without a user turn."}]}
    pairs = formats.load_talk_file(write(tmp_path, "c.jsonl", [chat]))
    assert pairs_of(pairs) == [("What is 2+2?", "4."), ("Thanks!", "Any time.")]


def test_alpaca_with_and_without_input(tmp_path):
    path = write(tmp_path, "a.jsonl", [{"instruction": "Translate to French.", "input": "cat",
                                         "output": "chat"},
                                        {"instruction": "Name a colour.", "input": "", "output": "Teal."},
                                        {"instruction": "Say hi.", "output": "Hi."}])
    assert pairs_of(formats.load_talk_file(path)) == [
        ("Translate to French.\ncat", "chat"), ("Name a colour.", "Teal."), ("Say hi.", "Hi.")]


def test_load_talk_weights(tmp_path):
    a = write(tmp_path, "a.jsonl", [{"prompt": "a", "response": "A"}])
    b = write(tmp_path, "b.jsonl", [{"instruction": "b", "output": "B"}])
    (pa, wa), (pb, wb) = formats.load_talk(f"{a}:3,{b}")
    assert (pairs_of(pa), wa, pairs_of(pb), wb) == ([("a", "A")], 3.0, [("b", "B")], 1.0)


@pytest.mark.parametrize("lines, line, message", [
    ([{"prompt": "a", "response": "b"}, '{"prompt": "a", "response": '], 2, "malformed JSON"),
    ([{"prompt": "a", "response": "b"}, "[1, 2]"], 2, "expected a JSON object, got list"),
    ([{"question": "a", "answer": "b"}], 1, 'recognised: {"prompt", "response"} | {"messages"'),
    ([{"prompt": "a", "response": "b"}, {"prompt": "a"}], 2, "missing response"),
    ([{"prompt": "  ", "response": "b"}], 1, "empty prompt"),
    ([{"prompt": "a", "response": 3}], 1, "response ('response') must be a string, got int"),
    ([{"messages": [{"role": "user", "content": ["part"]}, {"role": "assistant", "content": "x"}]}], 1,
     "messages[0] user content (prompt) ('content') must be a string, got list"),
    ([{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}], 1,
     "no assistant turn follows a user turn"),
    ([{"instruction": "i", "input": "", "output": ""}], 1, "empty output"),
    ([{"prompt": "a", "response": "b"}, b'{"prompt": "\xff", "response": "b"}'], 2, "not UTF-8"),
    ([{"prompt": "a", "response": "b"}, {"instruction": "i", "output": "o"}], 2, "made this a pairs file"),
])
def test_talk_errors_name_file_and_line(tmp_path, lines, line, message):
    path = write(tmp_path, "bad.jsonl", lines)
    with pytest.raises(ex.DataError) as e:
        formats.load_talk_file(path)
    assert f"{path}:{line}:" in str(e.value) and message in str(e.value), str(e.value)


# ---------------------------------------------------------------- goals

GOAL = {"goal": "find parse_config and open it", "intent": "COMPOSITE", "actions": ["SEARCH", "READ_FILE"],
        "args": [{"pattern": "parse_config"}, {"path": {"from": 1, "pick": 1}}]}


def test_builtin_goals_validate():
    assert len(ex.load_goals(GOALS)) == 804
    assert len(ex.load_goals(DATASETS / "goals" / "held_out.jsonl")) == 133


@pytest.mark.parametrize("change, message", [
    (dict(intent="CHAT"), "unknown intent 'CHAT'"),
    (dict(actions=["SEARCH", "GREP"]), "unknown tool 'GREP'"),
    (dict(args=[{"pattern": "parse_config"}]), "one object per action (2), got 1 entries"),
    (dict(args=[{"path": "parse_config"}, {}]), "step 1 (SEARCH): unknown argument 'path'"),
    (dict(args=[{"pattern": "load_config"}, {}]), "span 'load_config' is not in the goal"),
    (dict(args=[{"pattern": "parse_config"}, {"path": {"from": 2, "pick": 1}}]),
     "from=2 is not an earlier step"),
    (dict(actions=["TALK"] * (labels.NUM_SLOTS + 1), args=None), f"the policy has {labels.NUM_SLOTS} slots"),
])
def test_goal_errors_name_file_and_line(tmp_path, change, message):
    bad = {k: v for k, v in (GOAL | change).items() if v is not None}
    path = write(tmp_path, "goals.jsonl", [GOAL, bad])
    with pytest.raises(ex.DataError) as e:
        ex.load_goals(path)
    assert f"{path}:2:" in str(e.value) and message in str(e.value), str(e.value)


def test_unvalidated_span_fails_at_encoding_with_file_and_line(tmp_path):
    path = write(tmp_path, "goals.jsonl", [GOAL | dict(args=[{"pattern": "nowhere"}, {}])])
    record = ex.read_jsonl(path, ("goal",))[0]
    with pytest.raises(ex.DataError, match=f"{path}:1: argument 'nowhere' is not a span"):
        ex.policy_example(record, 64)


# ---------------------------------------------------------------- encoders and truncation

def test_talk_example_slots_truncation_and_decoder_tokenizer():
    e = ex.talk_example({"prompt": "abcdef", "response": "xyz"}, enc_len=4, dec_len=6, n_prefix=2)
    assert byte_tok.decode(e["enc"]) == "cdef"  # the end of an over-long prompt is kept
    pad, bos, eos = byte_tok.PAD, byte_tok.BOS, byte_tok.EOS
    assert e["dec_in"].tolist() == [pad, pad, bos, *b"xyz"]  # two concept slots, then BOS + text
    assert e["dec_tgt"].tolist() == [pad, pad, *b"xyz", eos]
    assert e["dec_w"].tolist() == [0, 0, 1, 1, 1, 1]
    merges = lambda s: [300 + len(w) for w in s.split()]  # a stand-in BPE: one id per word
    e = ex.talk_example({"prompt": "p", "response": "a bb ccc dddd"}, enc_len=4, dec_len=3, n_prefix=1,
                        dec_encode=merges)
    assert e["dec_in"].tolist() == [pad, bos, 301, 302] and e["dec_tgt"].tolist() == [pad, 301, 302, 303]
    batch = ex.talk_batch([{"prompt": "p", "response": "hello"}, {"prompt": "q", "response": ""}], 4, 8)
    want = byte_tok.decoder_pair(["hello", ""], 8)
    assert all(np.array_equal(batch[k], w) for k, w in zip(("dec_in", "dec_tgt", "dec_w"), want))


def test_overlong_planner_example_keeps_the_goal_end_and_the_whole_plan():
    record = {"goal": "please, " * 30 + "read src/app/main.py", "intent": "READ_FILE", "actions": ["READ_FILE"],
              "args": [{"path": "src/app/main.py"}]}
    e = ex.planner_example(record, max_len=96)
    assert len(e["inputs"]) == 96  # filled to the limit: the goal was cut, not the plan
    ids = [*e["inputs"], e["targets"][-1]]
    assert ids[-2:] == [plan_vocab.EOP, plan_vocab.EOS]
    text = bytes(i - plan_vocab.CHAR_OFFSET for i in ids if plan_vocab.CHAR_OFFSET <= i < plan_vocab.CHAR_OFFSET + 256)
    assert text.startswith(b"Goal\n") and b"read src/app/main.py\nPlan\n" in text and b"please, please" in text
    assert plan_vocab.decode_plan(ids)["steps"] == [{"tool": "READ_FILE", "args": {"path": "src/app/main.py"}}]
    assert ex.planner_truncated(record, 96) == ["prompt+plan > max_len+1=97 tokens (the goal's end kept)"]


def test_planner_truncated_is_its_definition_at_every_limit():
    """The check skips encoding goals that fit on bytes alone; at every limit it says what
    encoding each prompt says (a goal of many clauses, split on every comma, included)."""
    records = ex.load_goals(GOALS) + [{"goal": "a, b, c, d, e, f, g, h, i, j", "intent": "CONVERSATION",
                                       "actions": ["TALK"], "args": [{}]}]
    for max_len in range(20, 161, 7):
        for r in records:
            plan = len(plan_vocab.encode_plan(ex.goal_steps(r)))
            prompt = len(plan_vocab.encode_prompt(r["goal"]))
            assert bool(ex.planner_truncated(r, max_len)) == (prompt + plan > max_len + 1), (r["goal"], max_len)


def test_truncation_warning_once_per_file_with_count_and_limit(tmp_path, monkeypatch):
    warnings = []
    monkeypatch.setattr(ex.logging, "warning", lambda fmt, *a: warnings.append(fmt % a))
    a = write(tmp_path, "a.jsonl", [{"prompt": "x" * 10, "response": "ok"},
                                     {"prompt": "hi", "response": "y" * 9},
                                     {"prompt": "hi", "response": "ok"}])
    b = write(tmp_path, "b.jsonl", [{"prompt": "hi", "response": "ok"}])
    records = [p for pairs, _ in formats.load_talk(f"{a},{b}") for p in pairs]
    counts = ex.warn_truncated(records, functools.partial(ex.talk_truncated, enc_len=8, dec_len=8))
    assert counts == {str(a): 2}
    assert warnings == [f"{a}: 2 of 3 examples truncated (prompt > enc_len=8 bytes: 1; "
                        "response > dec_len-1=7 tokens: 1)"]
    goals = ex.load_goals(GOALS)
    assert ex.warn_truncated(goals, functools.partial(ex.policy_truncated, max_len=1000)) == {}


# ---------------------------------------------------------------- pipelines

def ids_of(batches, key="i"):
    return [int(i) for b in batches for i in b[key]]


def numbered(n, **extra):
    return [dict(i=i, **extra) for i in range(n)]


def as_arrays(r):
    return {k: np.int32(v) for k, v in r.items()}


def _stream(sources, seed, **kw):
    return iter(pipeline.example_stream(sources, as_arrays, seed, **kw))


def test_weighted_mixing_draws_in_proportion():
    sources = [(numbered(50, src=0), 3.0), (numbered(70, src=1), 1.0)]
    it = _stream(sources, seed=0)
    srcs = [int(next(it)["src"]) for _ in range(4000)]
    assert abs(srcs.count(0) / 4000 - 0.75) < 0.03


def test_endless_with_a_new_order_every_epoch():
    it = _stream([(numbered(40), 1.0)], seed=3)
    seen = [int(next(it)["i"]) for _ in range(120)]
    epochs = [seen[:40], seen[40:80], seen[80:]]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(40)) and epochs[0] != epochs[1]
    assert epochs[0] != list(range(40))


def test_stream_parts_are_disjoint_cover_the_data_and_interleave_one_stream():
    records = numbered(40)
    shards = [[int(next(it)["i"]) for _ in range(20)] for it in
              (_stream([(records, 1.0)], seed=1, part=p, parts=2) for p in range(2))]
    assert set(shards[0]).isdisjoint(shards[1]) and sorted(shards[0] + shards[1]) == list(range(40))
    single = _stream([(records, 1.0)], seed=1)
    assert [int(next(single)["i"]) for _ in range(40)] == [i for pair in zip(*shards) for i in pair]


def _goal_iterators(process_count, rows=8, pack_rows=4):
    c = config.load_tier("test")
    goals = ex.load_goals(GOALS)
    return [pipeline.train_iterator([(goals, 2.0), (goals[:50], 1.0)], phases.example_fn(c, "planner"),
                                    phases.layout(c, "planner"), rows, seed=3, process_index=p,
                                    process_count=process_count, pack_rows=pack_rows)
            for p in range(process_count)]


def _global(iterators):
    """The next global batch: every process's rows, in process order."""
    parts = [next(it) for it in iterators]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_the_global_batch_is_the_same_for_any_process_count():
    # 8 rows in blocks of 4: 2 processes pack one block each; 4 and 8 processes pack a block
    # together and keep their rows of it.
    runs = {n: _goal_iterators(n) for n in (1, 2, 4, 8)}
    for _ in range(5):
        batches = {n: _global(its) for n, its in runs.items()}
        assert all(_same(batches[1], b) for b in batches.values())
    assert packing.count_examples(batches[1], phases.layout(config.load_tier("test"), "planner")) > 8


@pytest.mark.parametrize("saved_by, resumed_by", [(2, 1), (1, 4), (4, 2), (8, 1)])
def test_a_position_saved_by_some_processes_resumes_on_another_number(saved_by, resumed_by):
    reference = _goal_iterators(1)
    expected = [_global(reference) for _ in range(7)][4:]
    saving = _goal_iterators(saved_by)
    for _ in range(4):
        _global(saving)
    saved = [json.loads(json.dumps(it.get_state())) for it in saving]
    resumed = _goal_iterators(resumed_by)
    for it in resumed:
        it.set_state(pipeline.merge_states(saved))
    assert all(_same(want, _global(resumed)) for want in expected)


def test_positions_that_cannot_resume_are_refused_with_the_reason():
    saved = [it.get_state() for it in _goal_iterators(2)]
    with pytest.raises(ex.DataError, match="block 0 saved at positions 0 and 5"):
        pipeline.merge_states([saved[0], {**saved[0], "next": {"0": 5}}])
    with pytest.raises(ex.DataError, match="the processes saved different batch shapes"):
        pipeline.merge_states([saved[0], {**saved[1], "rows": 16}])
    with pytest.raises(ex.DataError, match="older format"):
        pipeline.merge_states([{"parent": {"next_index": 40}}])
    other = _goal_iterators(1, rows=8, pack_rows=8)[0]
    with pytest.raises(ex.DataError, match=r"batches of 8 rows packed in blocks of 4; this run has 8 rows in "
                                        r"blocks of 8 .*config.data.pack_rows"):
        other.set_state(pipeline.merge_states(saved))
    with pytest.raises(ex.DataError, match=r"block\(s\) \[1\] was not saved"):
        _goal_iterators(1)[0].set_state(saved[0])


def test_a_batch_that_does_not_split_into_blocks_is_refused():
    with pytest.raises(ValueError, match=r"a batch of 24 rows does not split into blocks of 16 rows "
                                         r"\(config.data.pack_rows=16\)"):
        _goal_iterators(1, rows=24, pack_rows=16)


def test_batch_size_must_divide_by_process_count():
    c = config.load_tier("test")
    with pytest.raises(ValueError, match="global batch size 10 is not divisible by the process count 4"):
        pipeline.train_iterator([(ex.load_goals(GOALS), 1.0)], phases.example_fn(c, "policy"),
                                phases.layout(c, "policy"), 10, seed=0, process_count=4)


@pytest.mark.parametrize("rewrite", [None, functools.partial(augment.sometimes, p=0.5)])
def test_restored_iterator_yields_identical_batches(rewrite):
    goals = ex.load_goals(GOALS)
    c = config.load_tier("test")
    make = lambda: pipeline.train_iterator([(goals, 2.0), (goals[:50], 1.0)], phases.example_fn(c, "planner"),
                                           phases.layout(c, "planner"), 6, seed=7, augment=rewrite)
    it = make()
    for _ in range(9):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    expected = [next(it) for _ in range(4)]
    restored = make()
    restored.set_state(state)
    for want, got in zip(expected, (next(restored) for _ in range(4))):
        assert want.keys() == got.keys() and all(np.array_equal(want[k], got[k]) for k in want)


def test_split_is_seeded_and_keeps_a_val_record():
    records = numbered(50)
    train, val = pipeline.split(records, 0.1, seed=4)
    assert (train, val) == pipeline.split(records, 0.1, seed=4)
    assert val != pipeline.split(records, 0.1, seed=5)[1]
    assert len(val) == 5 and sorted(r["i"] for r in train + val) == list(range(50))
    assert len(pipeline.split(numbered(3), 0.01, seed=0)[1]) == 1


def test_eval_batches_count_every_record_once():
    goals = ex.load_goals(GOALS)
    c = config.load_tier("test")
    fn, layout = phases.example_fn(c, "policy"), phases.layout(c, "policy")
    batches = pipeline.eval_batches(goals, fn, layout, 16)
    assert all(b["ids"].shape == (16, c.policy.max_len) for b, _ in batches)
    assert sum(b["example_w"].sum() for b, _ in batches) == len(goals)
    assert sorted(int(i) for _, index in batches for i in index.ravel() if i >= 0) == list(range(len(goals)))
    planner = pipeline.eval_batches(goals, phases.example_fn(c, "planner"), phases.layout(c, "planner"), 16)
    whole = ex.planner_batch(goals, c.planner.max_len)["weights"].sum()
    assert np.isclose(sum(b["weights"].sum() for b, _ in planner), whole)
    halves = [pipeline.eval_batches(goals, fn, layout, 16, process_index=p, process_count=2) for p in range(2)]
    for (a, index), (b, same), (whole, _) in zip(*halves, batches):  # each process: its half of the rows
        assert np.array_equal(index, same) and np.array_equal(np.concatenate([a["ids"], b["ids"]]), whole["ids"])


# ---------------------------------------------------------------- mask validators

@pytest.fixture(scope="module")
def real_batches():
    c = config.load_tier("test")
    talk, goals = formats.load_talk_file(TALK), ex.load_goals(GOALS)
    data = dict(brain=talk, planner=goals, policy=goals)
    return {k: [next(it) for _ in range(3)] for k, it in
            ((k, pipeline.train_iterator([(data[k], 1.0)], phases.example_fn(c, k), phases.layout(c, k), 16,
                                         seed=0)) for k in masks.KINDS)}


@pytest.mark.parametrize("kind", masks.KINDS)
def test_masks_pass_on_real_batches(real_batches, kind):
    for batch in real_batches[kind]:
        stats = masks.validate(kind, batch, N_PREFIX)
        assert 0 < stats["trained_share"] <= 1 and stats["examples"] > 16  # packed: several per row
    assert masks.summary(kind, stats).startswith(f"{kind} masks ok: trained_share=")


def corrupt(batch, key, index, value):
    batch = {k: v.copy() for k, v in batch.items()}
    batch[key][index] = value
    return batch


def test_trained_pad_target_is_named_by_row(real_batches):
    batch = real_batches["brain"][0]
    pad = int(np.flatnonzero((batch["dec_tgt"][2] == byte_tok.PAD) & (batch["dec_seg"][2] > 0))[0])
    bad = corrupt(batch, "dec_w", (2, pad), 1.0)
    with pytest.raises(ex.DataError, match=r"'concept slots untrained' failed at batch row 2"):
        masks.validate("brain", bad, N_PREFIX)
    row, end = (int(x[0]) for x in np.nonzero(batch["dec_seg"] == 0))  # a row with padding at its end
    with pytest.raises(ex.DataError, match=rf"'padding untrained' failed at batch row {row}"):
        masks.validate("brain", corrupt(batch, "dec_w", (row, end), 1.0), N_PREFIX)


def test_trained_prompt_position_is_named_by_row(real_batches):
    bad = corrupt(real_batches["planner"][0], "weights", (5, 3), 1.0)
    with pytest.raises(ex.DataError, match=r"'no trained prompt position' failed at batch row 5"):
        masks.validate("planner", bad)


def test_a_plan_longer_than_the_row_of_trained_positions_is_named_with_the_setting_that_holds_it():
    c = config.load_tier("test")
    goals = ex.load_goals(c.data.goals_file)
    longest = max(ex.plan_trains(g, c.planner.max_len) for g in goals)
    ex.check_trained_len(goals, c.planner.max_len, longest)
    with pytest.raises(ex.DataError, match=rf"train\.jsonl:\d+: its plan trains \d+ positions, more than "
                                           rf"planner_sft\.trained_len={longest - 1} .*trained_len={longest} "):
        ex.check_trained_len(goals, c.planner.max_len, longest - 1)


def test_the_row_of_trained_positions_must_name_each_trained_position(real_batches):
    batch = real_batches["planner"][0]
    with pytest.raises(ex.DataError, match=r"'trained positions: one per trained position' failed at batch row 2"):
        masks.validate("planner", corrupt(batch, "trained_seg", (2, 0), 0))
    at = batch["trained_at"].copy()
    at[3, 0] += 1  # the loss would read the position after a trained one
    with pytest.raises(ex.DataError, match=r"'trained positions: each trained position, in order' failed at "
                                           r"batch row 3"):
        masks.validate("planner", dict(batch, trained_at=at))


def test_an_example_seeing_across_rows_is_named(real_batches):
    batch = real_batches["policy"][0]
    seg = batch["goal_seg"].copy()
    seg[1, seg[1] == 2] = 3  # slot 2 renumbered: the row now skips from 1 to 3
    with pytest.raises(ex.DataError, match=r"'goal slots 1, 2, ... in order' failed at batch row 1"):
        masks.validate("policy", dict(batch, goal_seg=seg))


def test_policy_label_out_of_range_is_named(real_batches):
    bad = corrupt(real_batches["policy"][0], "intent", (4, 0), len(labels.INTENTS))
    found = r"'intent within its class range' failed at batch row 4.*intent = 16 outside \[0, 16\)"
    with pytest.raises(ex.DataError, match=found):
        masks.validate("policy", bad)
    with pytest.raises(ex.DataError, match="trained share"):
        masks.validate("policy", dict(real_batches["policy"][0],
                                      example_w=np.zeros_like(real_batches["policy"][0]["example_w"])))


# ---------------------------------------------------------------- goal augmentation

def test_augmented_goals_keep_their_labels_and_copy_new_arguments():
    goals = ex.load_goals(GOALS)
    rng = np.random.default_rng(0)
    new_args = rewritten = 0
    for _ in range(3):
        for r in goals:
            a = augment.augment(r, rng)
            assert ex.goal_problem(a) is None, a  # every span is still in the goal
            assert (a["intent"], a["actions"]) == (r["intent"], r["actions"])
            old_args, args = r.get("args") or [], a.get("args") or []
            assert [sorted(x) for x in old_args] == [sorted(x) for x in args]
            rewritten += a["goal"] != r["goal"]
            new_args += any(x != y for x, y in zip(old_args, args))
            for x, y in zip(old_args, args):  # references to earlier steps are never rewritten
                assert {k: v for k, v in x.items() if isinstance(v, dict)} == \
                       {k: v for k, v in y.items() if isinstance(v, dict)}
    assert rewritten > len(goals) and new_args > len(goals) // 4


def test_augmented_path_keeps_its_shape():
    rng = np.random.default_rng(1)
    for old in ("src/app/main.py", "./migrations", "patches/fix-1.patch", "/etc/hosts", "docs/"):
        for _ in range(20):
            new = augment.new_value("path", old, rng)
            assert new.startswith("./") == old.startswith("./") and new.startswith("/") == old.startswith("/")
            assert new.endswith("/") == old.endswith("/")
            assert old.endswith(".patch") <= new.endswith(".patch")
    assert augment.new_value("text", "the VPN", rng) is None  # free text is kept


def test_whole_goal_case_changes_leave_argument_spans_as_written():
    record = {"goal": "Search for parseConfigV2 in the code", "intent": "SEARCH", "actions": ["SEARCH"],
              "args": [{"pattern": "parseConfigV2"}]}
    seen = set()
    for seed in range(300):
        a = augment._surface(record["goal"], ["parseConfigV2"], np.random.default_rng(seed))
        assert "parseConfigV2" in a
        outside = a.replace("parseConfigV2", "")
        seen.add("upper" if outside.isupper() else "lower" if outside.islower() else "mixed")
    assert seen == {"upper", "lower", "mixed"}


def test_paraphrases_train_the_brain_only_with_its_training_replies(tmp_path):
    c = config.load_tier("test")
    c.data.talk_paraphrases = ""
    base = phases.brain_spec(c, byte_tok.encode)
    train_reply, val_reply = base.sources[0][0][0]["response"], base.val[0]["response"]
    extra = write(tmp_path, "extra.jsonl", [{"prompt": "yo, say the thing", "response": train_reply},
                                            {"prompt": "and the other thing", "response": val_reply},
                                            {"prompt": "something new", "response": "A new reply."},
                                            {"prompt": "x" * 500, "response": train_reply}])
    c.data.talk_paraphrases = f"{extra}:0.4"
    with mock.patch.object(ex.logging, "warning") as warn:
        spec = phases.brain_spec(c, byte_tok.encode)
    assert any(str(extra) in call.args[1] for call in warn.call_args_list)  # the long prompt is named
    assert spec.sources[:-1] == base.sources and spec.val == base.val and spec.fit == base.fit
    kept, weight = spec.sources[-1]
    assert weight == 0.4 and [p["prompt"] for p in kept] == ["yo, say the thing", "x" * 500]
    # The talk metrics score the talk files' own prompts.
    scored = {p for p, _ in talk.training_prompts(spec, 10**6, seed=0)}
    assert scored == {r["prompt"] for r in base.sources[0][0]}
    # The built-in paraphrases (the default, weighted) answer with the built-in corpus's replies only.
    c.data.talk_paraphrases = config.load_tier("test").data.talk_paraphrases
    assert [w for _, w in phases.brain_spec(config.load_tier("test"), byte_tok.encode).sources] == [1.0, 0.5]
    mine = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(20)]
    c.data.talk_files = str(write(tmp_path, "mine.jsonl", mine))
    assert len(phases.brain_spec(c, byte_tok.encode).sources) == 1


def test_talk_prompt_rewrites_keep_the_response():
    pair = {"prompt": "what is a mutex?", "response": "A lock with opinions.", ex.WHERE: "t.jsonl:1"}
    rewritten = [augment.sometimes(pair, np.random.default_rng(s), 1.0, augment.talk_prompt) for s in range(50)]
    assert all(r["response"] == pair["response"] and r[ex.WHERE] == pair[ex.WHERE] for r in rewritten)
    assert len({r["prompt"] for r in rewritten}) > 10
    assert augment.sometimes(pair, np.random.default_rng(0), 0.0, augment.talk_prompt) is pair


def test_talk_prompts_train_planner_and_policy_as_conversation(tmp_path):
    talk = tmp_path / "chat.jsonl"
    talk.write_text(json.dumps({"messages": [{"role": "user", "content": "how do you feel today?"},
                                             {"role": "assistant", "content": "Operational."}]}) + "\n")
    c = config.load_tier("test")
    c.data.goals_chat = f"{talk}:0.3"
    spec = phases.goal_spec(c, "policy")
    (chat, weight), = [s for s in spec.sources if s[0][0]["goal"] == "how do you feel today?"]
    assert weight == 0.3 and ex.goal_problem(chat[0]) is None
    assert (chat[0]["intent"], chat[0]["actions"]) == ("CONVERSATION", ["TALK"])
    c.data.goals_chat = ""
    assert len(phases.goal_spec(c, "planner").sources) == len(spec.sources) - 1
