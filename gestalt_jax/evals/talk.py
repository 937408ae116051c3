"""Talk metrics of a trained brain, for `gestalt eval` and the end of brain SFT.

Every reply here is the plain argmax (no n-gram penalty, whatever config.gen says): the
metrics measure what the model learned, and the penalty alone would block the ~12% of
training responses that repeat a 4-gram of BPE tokens. Replies get max_new = dec_len tokens.

- val_loss, val_ppl, val_concept_sim: the training eval step (train/validate.py) on the seeded
  val split of the talk corpus, so they equal what training logged at the best step.
- train_exact: share of the drawn training prompts (at most config.gen.talk_eval_max distinct
  ones, a sample seeded by config.gen.seed; train_n of them) whose decoded reply equals one of
  that prompt's training responses exactly.
- concept_sim: mean pairwise cosine of those prompts' concept vectors (validate.concept_sim);
  lower is more discriminative.
- prefix_changed, prefix_distance: the drawn prompts in their seeded order form disjoint
  pairs (0, 1), (2, 3), ... (prefix_pairs of them). Swapping the two concept vectors of a
  pair between their rows gives row a the prefix of b; with no memory attached nothing else
  in a row differs, so row a's new reply is exactly b's reply, and "how much the output
  changes" is how much the two replies differ. prefix_changed is the share of pairs whose
  replies differ; prefix_distance the mean over pairs of 0 for identical replies, else
  1 - (chrF(a, b) + chrF(b, a)) / 200 (chrF is asymmetric). Both are 0 when the decoder
  ignores the concept, as every row then gets the same reply.
- held_out_chrf, held_out_exact: corpus chrF (0-100) of the replies to the held-out
  paraphrases (config.gen.held_out_file, at most talk_eval_max of them, held_out_n) against
  their references, and the share replied exactly; absent when that key is "".
- held_out_in_corpus, held_out_known_words: whether those replies speak the corpus's
  language at all: the share that is word for word some training response (any prompt's),
  and the share of their words (letters and apostrophes, case-folded) that occur in some
  training response. Blends of several replies spelled wrong score low on both.
- held_out_ranked_chrf, held_out_ranked_exact, held_out_ranked_in_corpus: the same three for
  the sample-and-rank replies (config.gen.candidates sampled at config.gen.rank_temperature
  beside the argmax one, seeded by config.gen.seed; `ranked_replies`); absent when
  config.gen.candidates is 0.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Collection, Sequence

import jax
import ml_collections
import numpy as np

from gestalt_jax.data import examples, pipeline
from gestalt_jax.evals.chrf import corpus_chrf, sentence_chrf
from gestalt_jax.infer import trained as trained_lib
from gestalt_jax.infer.replies import Decode, concepts, host_params, ranked_replies, replies
from gestalt_jax.model.brain import Brain, build_brain
from gestalt_jax.train import loop, losses, phases, validate
from gestalt_jax.train import mesh as mesh_lib
from gestalt_jax.train import step as step_lib
from gestalt_jax.train.metrics import log

# metric -> what it means, in the order the table shows them.
MEANING = {
    "val_loss": "decoder cross-entropy on the val split",
    "val_ppl": "exp(val_loss)",
    "val_concept_sim": "concept_sim of the val prompts",
    "train_n": "training prompts replied to",
    "train_exact": "replies equal to the training response",
    "concept_sim": "mean pairwise cosine of their concepts (lower: more distinct)",
    "prefix_pairs": "pairs of them whose concepts were swapped",
    "prefix_changed": "pairs whose reply changes with the swap (0: concept ignored)",
    "prefix_distance": "mean 1 - chrF/100 between the swapped replies",
    "held_out_n": "held-out paraphrases replied to",
    "held_out_chrf": "corpus chrF (0-100) against the reference",
    "held_out_exact": "replies equal to the reference",
    "held_out_in_corpus": "replies equal to some training response",
    "held_out_known_words": "words of the replies found in the training responses",
    "held_out_ranked_chrf": "corpus chrF of the ranked replies (best of argmax + candidates)",
    "held_out_ranked_exact": "ranked replies equal to the reference",
    "held_out_ranked_in_corpus": "ranked replies equal to some training response",
    "seconds": "time taken",
}


def training_prompts(spec: phases.PhaseSpec, cap: int, seed: int) -> list[tuple[str, frozenset[str]]]:
    """At most `cap` distinct prompts of the talk files' training pairs (not the paraphrases) with all
    their training responses, in a seeded order."""
    responses: dict[str, set[str]] = {}
    for records, _ in spec.sources[: spec.corpus_sources]:
        for r in records:
            responses.setdefault(r["prompt"], set()).add(r["response"])
    prompts = list(responses)
    order = np.random.default_rng(seed).permutation(len(prompts))[:cap]
    return [(prompts[i], frozenset(responses[prompts[i]])) for i in order]


def training_responses(spec: phases.PhaseSpec) -> frozenset[str]:
    """Every response of the brain phase's training sources."""
    return frozenset(r["response"] for records, _ in spec.sources for r in records)


def exact_rate(said: Sequence[str], accepted: Sequence[frozenset[str] | set[str]]) -> float:
    """Share of replies found in their row's set of accepted texts."""
    if len(said) != len(accepted):
        raise ValueError(f"exact_rate: {len(said)} replies for {len(accepted)} reference sets")
    return float(np.mean([r in ok for r, ok in zip(said, accepted)])) if said else float("nan")


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """Case-folded words: runs of letters, with inner apostrophes ("don't")."""
    return _WORD.findall(text.lower())


def known_word_share(said: Sequence[str], corpus: Collection[str]) -> float:
    """Share of the words in `said` that occur in some text of `corpus` (nan without words)."""
    vocab = {w for text in corpus for w in words(text)}
    said_words = [w for text in said for w in words(text)]
    return float(np.mean([w in vocab for w in said_words])) if said_words else float("nan")


def prefix_change(said: Sequence[str]) -> tuple[int, float, float]:
    """(pairs, share changed, mean distance) over the pairs (0, 1), (2, 3), ... of said
    (the module docstring defines them)."""
    pairs = [(said[i], said[i + 1]) for i in range(0, len(said) - 1, 2)]
    if not pairs:
        return 0, float("nan"), float("nan")
    changed = [a != b for a, b in pairs]
    distance = [0.0 if a == b else 1.0 - (sentence_chrf(a, b) + sentence_chrf(b, a)) / 200 for a, b in pairs]
    return len(pairs), float(np.mean(changed)), float(np.mean(distance))


def _against(said: Sequence[str], refs: Sequence[str], corpus: frozenset[str],
             prefix: str) -> dict[str, float]:
    """<prefix>chrf, <prefix>exact and <prefix>in_corpus of replies to held-out prompts."""
    return {f"{prefix}chrf": corpus_chrf(said, refs), f"{prefix}exact": exact_rate(said, [{r} for r in refs]),
            f"{prefix}in_corpus": exact_rate(said, [corpus] * len(said))}


def reply_metrics(c: ml_collections.ConfigDict, brain: Brain, params, decode: Decode,
                  train: Sequence[tuple[str, frozenset[str]]], held_out: Sequence[dict],
                  corpus: frozenset[str]) -> tuple[dict[str, float], list[dict]]:
    """The metrics that need generation, and one record per reply (for eval/talk_replies.jsonl).

    `train` comes from `training_prompts`; `held_out` holds {prompt, reference} records;
    `corpus` is every training response (`training_responses`).
    """
    prompts = [p for p, _ in train]
    said = replies(c, brain, params, decode, prompts)
    pairs, changed, distance = prefix_change(said)
    out = dict(train_n=len(prompts), train_exact=exact_rate(said, [ok for _, ok in train]),
               concept_sim=validate.concept_sim(concepts(c, brain, params, prompts)),
               prefix_pairs=pairs, prefix_changed=changed, prefix_distance=distance)
    rows = [dict(set="train", prompt=p, reply=r, exact=r in ok) for (p, ok), r in zip(train, said)]
    if held_out:
        refs = [r["reference"] for r in held_out]
        said = replies(c, brain, params, decode, [r["prompt"] for r in held_out])
        out.update(held_out_n=len(refs), **_against(said, refs, corpus, "held_out_"),
                   held_out_known_words=known_word_share(said, corpus))
        held_rows = [dict(set="held_out", prompt=r["prompt"], reference=ref, reply=s,
                          chrf=sentence_chrf(s, ref)) for r, ref, s in zip(held_out, refs, said)]
        if c.gen.candidates:
            ranked = ranked_replies(c, brain, params, decode, [r["prompt"] for r in held_out])
            out.update(_against(ranked, refs, corpus, "held_out_ranked_"))
            for row, s in zip(held_rows, ranked):
                row.update(ranked=s, ranked_chrf=sentence_chrf(s, row["reference"]))
        rows += held_rows
    return out, rows


def val_metrics(c: ml_collections.ConfigDict, params, spec: phases.PhaseSpec, mesh) -> dict[str, float]:
    """val_loss, val_ppl and val_concept_sim with training's own eval step (call inside the mesh)."""
    _, loss_fn = losses.component(c, "brain", train=False)
    batches = pipeline.eval_batches(spec.val, spec.example_fn, spec.layout, c.sft.batch_size, jax.process_index(),
                                    jax.process_count())
    eval_fn = jax.jit(step_lib.make_eval_step(loss_fn))
    v = validate.evaluate(eval_fn, params, batches, mesh, "brain", spec.val)
    return dict(val_loss=v["val_loss"], val_ppl=v["val_ppl"], val_concept_sim=v["concept_sim"])


def held_out_records(c: ml_collections.ConfigDict) -> list[dict]:
    if not c.gen.held_out_file:
        return []
    return examples.read_jsonl(c.gen.held_out_file, ("prompt", "reference"))[:c.gen.talk_eval_max]


def measure(c: ml_collections.ConfigDict, params, decode: Decode, spec: phases.PhaseSpec,
            mesh) -> tuple[dict[str, float], list[dict]]:
    """All talk metrics of brain `params` (placed on `mesh`) and the per-reply records."""
    t = time.time()
    with mesh_lib.activate(mesh):
        out = val_metrics(c, params, spec, mesh)
    train = training_prompts(spec, c.gen.talk_eval_max, c.gen.seed)
    brain = build_brain(c)
    generated, rows = reply_metrics(c, brain, host_params(params), decode, train, held_out_records(c),
                                    training_responses(spec))
    out.update(generated)
    out["seconds"] = round(time.time() - t, 1)
    return out, rows


def evaluate(c: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, float]:
    """Talk metrics of the brain in workdir (with the config it was trained with; `c` gives the
    inference settings); writes workdir/eval/talk.json and talk_replies.jsonl and prints them as a table."""
    workdir = Path(workdir)
    brain = trained_lib.load(c, workdir, "brain")
    metrics, rows = measure(brain.config, brain.params, brain.decode, brain.spec, brain.mesh)
    out_dir = workdir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    loop.write_json(out_dir / "talk.json", metrics)
    if jax.process_index() == 0:
        with open(out_dir / "talk_replies.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    log(table(metrics))
    log(f"[eval] talk metrics in {out_dir / 'talk.json'}; every reply in {out_dir / 'talk_replies.jsonl'}")
    return metrics


def brief(metrics: dict[str, float]) -> str:
    """The headline numbers on one line."""
    headline = ("train_exact", "concept_sim", "prefix_changed", "held_out_chrf", "val_ppl")
    shown = [f"{k} {metrics[k]:.3g}" for k in headline if k in metrics]
    return ", ".join(shown) + f" ({metrics['train_n']} training prompts)"


def table(metrics: dict[str, float]) -> str:
    """Markdown table: metric, value, meaning."""
    rows = ["| talk metric | value | meaning |", "|---|---|---|"]
    for k, meaning in MEANING.items():
        if k in metrics:
            v = metrics[k]
            shown = str(v) if isinstance(v, int) else f"{v:.4g}"
            rows.append(f"| {k} | {shown} | {meaning} |")
    return "\n".join(rows)
