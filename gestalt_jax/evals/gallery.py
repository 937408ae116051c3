"""`gestalt gallery`: the brain's replies to the gallery prompts, as workdir/gallery.md and on the console.

Every prompt of config.gen.gallery_file gets a greedy reply (temperature 0 with config.gen's
n-gram penalty: what a user gets by default at temperature 0); the first
config.gen.gallery_sampled prompts of each category are also sampled at each of
config.gen.gallery_temperatures, seeded by config.gen.seed. With config.gen.candidates > 0
every prompt also gets a ranked reply (replies.ranked_replies: of the argmax reply and that many
sampled, the one the brain finds most likely). Each prompt is marked `train`
(a training prompt), `val` (in the seeded validation split) or `new`. For each of these
groups the report says how many greedy (and ranked) replies are word for word a training
response and what share of their words occur in the training responses
(talk.known_word_share): whether the replies to new prompts are in the corpus's voice.
"""

from __future__ import annotations

import collections
from pathlib import Path

import jax
import ml_collections

from gestalt_jax.data import examples
from gestalt_jax.evals import talk
from gestalt_jax.infer import replies, trained
from gestalt_jax.model.brain import Brain
from gestalt_jax.train.metrics import log
from gestalt_jax.train.phases import PhaseSpec

FILENAME = "gallery.md"


def seen_as(spec: PhaseSpec) -> dict[str, str]:
    """prompt -> "train" or "val" for every prompt of the talk corpus (train wins a tie)."""
    seen = {r["prompt"]: "val" for r in spec.val}
    seen.update({r["prompt"]: "train" for records, _ in spec.sources for r in records})
    return seen


def build(c: ml_collections.ConfigDict, brain: Brain, params, decode: replies.Decode, records: list[dict],
          seen: dict[str, str]) -> list[dict]:
    """One entry per gallery record: prompt, category, seen ("train", "val" or "new"), greedy reply,
    ranked reply (None when config.gen.candidates is 0) and sampled {temperature: reply} (empty for
    prompts that are not sampled)."""
    prompts = [r["prompt"] for r in records]
    greedy = replies.replies(c, brain, params, decode, prompts, replies.sampling(c, 0.0))
    ranked = (replies.ranked_replies(c, brain, params, decode, prompts) if c.gen.candidates
              else [None] * len(prompts))
    entries = [dict(prompt=p, category=r["category"], seen=seen.get(p, "new"), greedy=g, ranked=k,
                    sampled={}) for r, p, g, k in zip(records, prompts, greedy, ranked)]
    per_category = collections.Counter()
    chosen = []
    for e in entries:
        per_category[e["category"]] += 1
        if per_category[e["category"]] <= c.gen.gallery_sampled:
            chosen.append(e)
    if chosen:
        for j, t in enumerate(c.gen.gallery_temperatures):
            rng = jax.random.fold_in(jax.random.key(c.gen.seed), j)
            how = replies.sampling(c, t)
            said = replies.replies(c, brain, params, decode, [e["prompt"] for e in chosen], how, rng)
            for e, s in zip(chosen, said):
                e["sampled"][t] = s
    return entries


def voice(entries: list[dict], corpus: frozenset[str], reply: str = "greedy") -> str:
    """One line per seen-group ("train", "val", "new") of the `reply` ("greedy" or "ranked") replies:
    how many are a training response word for word, and the share of their words found in the
    training responses."""
    lines = []
    for seen in ("train", "val", "new"):
        said = [e[reply] for e in entries if e["seen"] == seen]
        if said:
            whole = sum(s in corpus for s in said)
            known = talk.known_word_share(said, corpus)
            lines.append(f"- {seen}: {len(said)} prompts, {whole} replies word for word a training response, "
                         f"{100 * known:.1f}% of their words found in the training responses")
    return "\n".join(lines)


def _by_category(entries: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["category"], []).append(e)
    return groups


def _cell(text: str) -> str:
    """Text for one Markdown table cell: pipes escaped, line breaks (any str.splitlines breaks,
    such as U+2028 or the control bytes a half-trained brain emits) kept visible."""
    return "<br>".join(text.replace("|", "\\|").splitlines()) if text else "*(empty)*"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def markdown(c: ml_collections.ConfigDict, entries: list[dict], workdir: str | Path, summary: str) -> str:
    """The report: a header saying how the replies were made and `summary` (`voice`), then one
    section per category."""
    g = c.gen
    temperatures = ", ".join(str(t) for t in g.gallery_temperatures)
    counts = collections.Counter(e["seen"] for e in entries)
    lines = [f"# Gallery: {c.tier} brain in {workdir}", "",
             f"{len(entries)} prompts in {len(_by_category(entries))} categories "
             f"({counts['train']} training prompts, {counts['val']} from the val split, "
             f"{counts['new']} new). "
             f"Greedy replies use temperature 0 with the {g.ngram}-gram penalty {g.ngram_penalty}; "
             f"the first {g.gallery_sampled} prompts of each category are also sampled at temperatures "
             f"{temperatures} (top-k {g.top_k}, top-p {g.top_p}, seed {g.seed}).", ""]
    ranked = bool(g.candidates)
    if ranked:
        lines += [f"Ranked replies are sample-and-rank: of the argmax reply (no n-gram penalty) and "
                  f"{g.candidates} sampled at temperature {g.rank_temperature}, the one the brain gives "
                  f"the highest mean log-probability per token.", ""]
    lines += [summary, ""]
    columns = ["prompt", "seen", "greedy reply"] + ["ranked reply"] * ranked
    for category, group in _by_category(entries).items():
        lines += [f"## {category}", "", _row(columns), "|---" * len(columns) + "|"]
        lines += [_row([_cell(e["prompt"]), e["seen"], _cell(e["greedy"])] + [_cell(e["ranked"])] * ranked)
                  for e in group]
        sampled = [e for e in group if e["sampled"]]
        if sampled:
            lines += ["", _row(["prompt", "temperature", "sampled reply"]), "|---" * 3 + "|"]
            lines += [_row([_cell(e["prompt"]), str(t), _cell(s)])
                      for e in sampled for t, s in e["sampled"].items()]
        lines.append("")
    return "\n".join(lines)


def plain(entries: list[dict]) -> str:
    """The console version: per category, each prompt with its replies indented below it."""
    lines = []
    for category, group in _by_category(entries).items():
        lines.append(f"== {category} ==")
        for e in group:
            lines.append(f"[{e['seen']}] {e['prompt']}")
            lines.append(f"    greedy: {e['greedy']}")
            if e["ranked"] is not None:
                lines.append(f"    ranked: {e['ranked']}")
            lines += [f"    T={t}: {s}" for t, s in e["sampled"].items()]
        lines.append("")
    return "\n".join(lines)


def run(c: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    """Generate the gallery of the brain in workdir, write workdir/gallery.md, print it; returns its path."""
    workdir = Path(workdir)
    records = examples.read_jsonl(c.gen.gallery_file, ("prompt", "category"))
    brain = trained.load(c, workdir, "brain")
    c, spec = brain.config, brain.spec
    entries = build(c, brain.module, brain.host_params, brain.decode, records, seen_as(spec))
    corpus = talk.training_responses(spec)
    summary = "Greedy replies against the training responses:\n\n" + voice(entries, corpus)
    if c.gen.candidates:
        summary += "\n\nRanked replies against the training responses:\n\n" + voice(entries, corpus, "ranked")
    path = workdir / FILENAME
    if jax.process_index() == 0:
        path.write_text(markdown(c, entries, workdir, summary), encoding="utf-8")
    log(plain(entries))
    log(f"[gallery] {summary}")
    log(f"[gallery] {len(entries)} prompts -> {path}")
    return path
