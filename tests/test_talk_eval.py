"""Talk metrics (evals/talk.py), the gallery report and the eval/gallery commands on a trained brain."""

import json
import shutil
import subprocess
import sys
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gestalt_jax import config as config_lib
from gestalt_jax.data import examples
from gestalt_jax.evals import gallery, talk
from gestalt_jax.model.brain import build_brain
from gestalt_jax.text import bpe
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.train import losses, phases
from gestalt_jax.infer import trained as trained_lib

REPO = config_lib.REPO_ROOT
TEST_CONFIG = str(REPO / "configs" / "test.py")
CAP = 16  # training and held-out prompts scored: keeps the test tier's generation short


# A few brain steps; replies to CAP prompts in one batch.
OVERRIDES = dict(sft=dict(steps=6, eval_every=3), debug=dict(log_every=100), gen=dict(talk_eval_max=CAP, batch_size=CAP))


@pytest.fixture(scope="module")
def trained(train_once, tmp_path_factory, test_tier):
    """A test-tier tokenizer and brain, a few steps in (OVERRIDES), trained once per test run by
    `gestalt train` and copied for this module's commands to write into: (config, workdir, summary)."""
    c, flags = test_tier(OVERRIDES)
    trained_dir = train_once("talk", [f"--config={TEST_CONFIG}", "--phases=tokenizer,brain", *flags])
    workdir = tmp_path_factory.mktemp("talk")
    shutil.copytree(trained_dir, workdir, dirs_exist_ok=True)
    return c, workdir, json.loads((workdir / "summary.json").read_text())


def test_brain_sft_ends_with_the_talk_metrics(trained):
    c, workdir, summary = trained
    m = summary["phases"]["brain"]["talk"]
    assert f"[summary] brain talk: {talk.brief(m)}" in (workdir / "train.log").read_text()
    assert set(m) == set(talk.MEANING)
    assert m["train_n"] == CAP and m["prefix_pairs"] == CAP // 2 and m["held_out_n"] == CAP
    # The eval step is training's own: it reproduces the val loss logged at the best step, and
    # that step was chosen by how many sampled training replies it reproduces.
    best = summary["phases"]["brain"]
    logged = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    at_best = next(v for v in logged if v["phase"] == "brain" and v["step"] == best["best_step"]
                   and "val_loss" in v)
    assert m["val_loss"] == pytest.approx(at_best["val_loss"], rel=1e-5)
    assert best["best_score"] == pytest.approx(  # the corpus holds more than fit_sample pairs
        phases.exact_score(at_best, key="fit_exact", n=c.sft.fit_sample), rel=1e-6)
    assert m["val_ppl"] == pytest.approx(np.exp(m["val_loss"]), rel=1e-6)
    for k in ("train_exact", "prefix_changed", "prefix_distance", "held_out_exact", "held_out_in_corpus",
              "held_out_known_words", "held_out_ranked_exact", "held_out_ranked_in_corpus"):
        assert 0.0 <= m[k] <= 1.0, k
    assert -1.0 <= m["concept_sim"] <= 1.0 and -1.0 <= m["val_concept_sim"] <= 1.0
    assert 0.0 <= m["held_out_chrf"] <= 100.0 and 0.0 <= m["held_out_ranked_chrf"] <= 100.0


def test_selection_score_ranks_by_examples_reproduced_then_val_loss():
    def score(exact, loss):
        return phases.exact_score(dict(fit_exact=exact, val_loss=loss), key="fit_exact", n=4)
    assert score(0.75, 1e9) < score(0.5, 0.0)  # one more example reproduced beats any loss
    assert score(0.5, 1.0) < score(0.5, 2.0)


def test_teacher_forced_exact_counts_examples_with_every_trained_target_right():
    # Row 0 packs two examples (slots 1, 2); row 1 holds one, then padding; row 2 is padding.
    segments_BxT = jnp.array([[1, 1, 2, 2], [1, 1, 1, 0], [0, 0, 0, 0]])
    targets_BxT = jnp.array([[1, 2, 1, 2], [1, 2, 0, 0], [0, 0, 0, 0]])
    weights_BxT = jnp.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    logits_BxTxV = jax.nn.one_hot(jnp.array([[1, 2, 0, 1], [1, 2, 1, 1], [0, 0, 0, 0]]), 3)
    out = losses._teacher_forced_exact(logits_BxTxV, targets_BxT, weights_BxT, segments_BxT, 3)
    # Slot 2 of row 0 is wrong at a trained target; row 1's wrong position is untrained.
    assert float(out["examples"]) == 3 and float(out["exact"]) == 2


def test_exact_rate_counts_any_accepted_response():
    assert talk.exact_rate(["a", "b"], [{"a"}, {"x", "b"}]) == 1.0
    assert talk.exact_rate(["a", "b "], [{"a"}, {"b"}]) == 0.5  # exact: a trailing space is a miss
    with pytest.raises(ValueError, match="2 replies for 1"):
        talk.exact_rate(["a", "b"], [{"a"}])


def test_corpus_voice_metrics_count_whole_replies_and_known_words():
    corpus = ["Pong. Latency acceptable.", "I don't know."]
    assert talk.words("Don't PANIC, it's 2 o'clock") == ["don't", "panic", "it's", "o'clock"]
    assert talk.known_word_share(["pong, I know", "latency xyzzy"], corpus) == pytest.approx(4 / 5)
    assert np.isnan(talk.known_word_share(["42 ..."], corpus))
    assert talk.exact_rate(["I don't know.", "I don't know"], [frozenset(corpus)] * 2) == 0.5


def test_prefix_change_pairs_rows_and_scores_identical_replies_zero():
    pairs, changed, distance = talk.prefix_change(["same", "same", "abc", "xyz", "odd one out"])
    assert (pairs, changed) == (2, 0.5)
    assert distance == pytest.approx(0.5)  # (0 + 1) / 2: "abc" and "xyz" share no character
    assert talk.prefix_change(["", ""]) == (1, 0.0, 0.0)  # chrF of empty strings is 0, but they are equal


def test_training_prompts_are_distinct_with_all_their_responses():
    records = [dict(prompt="a", response="1"), dict(prompt="b", response="2"), dict(prompt="a", response="3")]
    spec = types.SimpleNamespace(sources=[(records[:2], 1.0), (records[2:], 2.0)], corpus_sources=None)
    drawn = talk.training_prompts(spec, cap=10, seed=0)
    assert sorted(drawn) == [("a", frozenset({"1", "3"})), ("b", frozenset({"2"}))]
    assert len(talk.training_prompts(spec, cap=1, seed=0)) == 1
    assert talk.training_prompts(spec, cap=10, seed=0) == drawn  # seeded


@pytest.fixture(scope="module")
def random_brain(test_tier):
    c, _ = test_tier(OVERRIDES)
    brain = build_brain(c)
    enc = jnp.asarray(byte_tok.encode_left(["x"], c.brain.enc_len))
    dec = jnp.asarray(byte_tok.decoder_pair(["y"], c.brain.dec_len)[0])
    memory = jnp.zeros((1, c.brain.mem_k, c.brain.d_model))
    return c, brain, nn.meta.unbox(jax.jit(brain.init)(jax.random.key(0), enc, dec, memory)["params"])


def test_prefix_sensitivity_is_zero_only_when_the_prefix_is_ignored(trained, random_brain):
    c, brain, params = random_brain
    decode = bpe.load(trained[1]).decode
    pairs = examples.read_jsonl(c.data.talk_files, ("prompt", "response"))[:8]
    train = [(r["prompt"], frozenset({r["response"]})) for r in pairs]
    held_out = [dict(prompt=r["prompt"], reference=r["response"]) for r in pairs[:4]]
    corpus = frozenset(r["response"] for r in pairs)
    m, rows = talk.reply_metrics(c, brain, params, decode, train, held_out, corpus)
    assert m["prefix_pairs"] == 4 and m["prefix_changed"] > 0 and m["prefix_distance"] > 0
    assert [r["set"] for r in rows] == ["train"] * 8 + ["held_out"] * 4
    # With concept_proj zeroed every row gets the same prefix: the concept cannot matter.
    blind = dict(params, concept_proj=jax.tree.map(jnp.zeros_like, params["concept_proj"]))
    m, rows = talk.reply_metrics(c, brain, blind, decode, train, held_out, corpus)
    assert m["prefix_changed"] == 0.0 and m["prefix_distance"] == 0.0
    assert len({r["reply"] for r in rows}) == 1


def test_gallery_command_writes_every_prompt_by_category(trained, decode_env):
    c, workdir, _ = trained
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "gallery", f"--config={TEST_CONFIG}",
                        f"--workdir={workdir}", f"--config.gen.batch_size={CAP}"],
                       capture_output=True, text=True, timeout=600, cwd=REPO, env=decode_env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = (workdir / gallery.FILENAME).read_text(encoding="utf-8")
    records = examples.read_jsonl(c.gen.gallery_file, ("prompt", "category"))
    assert len(records) >= 60 and len({x["category"] for x in records}) >= 9
    for x in records:
        assert x["prompt"] in report and x["prompt"] in r.stdout
        assert f"## {x['category']}\n" in report and f"== {x['category']} ==" in r.stdout
    assert "- new: " in report and "- new: " in r.stdout  # the voice summary of the new prompts
    assert "| hello | train |" in report  # a training prompt of datasets/talk/train.jsonl, marked so
    assert "| new |" in report
    sampled = [line for line in report.splitlines() if line.startswith("| hello | ")]
    assert [line.split(" | ")[1] for line in sampled[1:]] == [str(t) for t in c.gen.gallery_temperatures]
    assert sampled[0].count(" | ") == 3  # prompt, seen, greedy reply, ranked reply
    assert "Ranked replies against the training responses:" in report and "    ranked: " in r.stdout


def test_gallery_has_ranked_replies_only_with_candidates():
    c, workdir = config_lib.load_tier("test"), "runs/test"
    entries = [dict(prompt="hi", category="greeting", seen="new", greedy="Hello.", ranked="Hi.", sampled={})]
    with_ranked = gallery.markdown(c, entries, workdir, "summary")
    assert "| hi | new | Hello. | Hi. |" in with_ranked and f"{c.gen.candidates} sampled" in with_ranked
    assert "    ranked: Hi." in gallery.plain(entries)
    entries[0]["ranked"] = None
    c.gen.candidates = 0
    without = gallery.markdown(c, entries, workdir, "summary")
    assert "| hi | new | Hello. |\n" in without and "ranked" not in without.lower()
    assert "ranked" not in gallery.plain(entries)
    # A reply with line breaks of any kind stays on its table row.
    assert gallery._cell("a\x1cb|c\u2028d\n") == "a<br>b\\|c<br>d" and gallery._cell("") == "*(empty)*"


def test_gallery_voice_counts_whole_replies_and_known_words_per_group():
    entries = [dict(seen="train", greedy="Pong."), dict(seen="new", greedy="Pong."),
               dict(seen="new", greedy="Pongg xyz.")]
    lines = gallery.voice(entries, frozenset({"Pong."})).splitlines()
    assert lines == ["- train: 1 prompts, 1 replies word for word a training response, "
                     "100.0% of their words found in the training responses",
                     "- new: 2 prompts, 1 replies word for word a training response, "
                     "33.3% of their words found in the training responses"]


def test_eval_command_on_a_brain_alone_prints_the_talk_metrics(trained, decode_env):
    c, workdir, _ = trained
    r = subprocess.run([sys.executable, "-m", "gestalt_jax.main", "eval", f"--config={TEST_CONFIG}",
                        f"--workdir={workdir}", f"--config.gen.talk_eval_max={CAP}",
                        f"--config.gen.batch_size={CAP}", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=REPO, env=decode_env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    scores = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(scores) == {"talk"}  # no planner or policy trained: no goal benches
    assert scores["talk"] == json.loads((workdir / "eval" / "talk.json").read_text())
    assert scores["talk"]["train_n"] == CAP
    assert "| train_exact |" in r.stdout
    replies = (workdir / "eval" / "talk_replies.jsonl").read_text().splitlines()
    assert len(replies) == 2 * CAP


def test_the_talk_tool_answers_the_goal_with_the_ranked_reply(trained, tmp_path):
    from gestalt_jax.agent import executor
    from gestalt_jax.agent.sandbox import Sandbox
    from gestalt_jax.agent.tools.base import Context
    c, workdir, _ = trained
    goal = "hello there, how are you?"
    ctx = Context(Sandbox(tmp_path, c.agent), c, workdir, goal=goal)
    (_, result), = executor.run_plan(ctx, [{"tool": "TALK", "args": {}}])
    expected = trained_lib.load(c, workdir, "brain").ranked([goal])[0]
    assert result.status == "ok" and result.summary == expected and result.items[0].text == expected
    untrained = Context(Sandbox(tmp_path, c.agent), c, tmp_path / "nothing", goal=goal)
    (_, missing), = executor.run_plan(untrained, [{"tool": "TALK", "args": {}}])
    assert missing.status == "error" and "no trained brain" in missing.summary
