"""What differs between the training phases: data, on-device batch changes, kept state.

brain (config.sft): talk pairs; PAD-denoising of decoder inputs ramped up to noise_max
(below ~10% the decoder learns to ignore the concept prefix and the encoder gets no
gradient); after a warm-up, memory on a memory_prob share of steps, K vectors drawn from
a pool of recent concept vectors that every step refreshes.
planner (config.planner_sft) and policy (config.policy_sft): labelled goals.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gestalt_jax import config as config_lib
from gestalt_jax.data import augment, examples, formats, packing, pipeline
from gestalt_jax.model.brain import MEMORY_PATHS
from gestalt_jax.model.policy import ARG_KINDS
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import plan_vocab
from gestalt_jax.train import grad_check
from gestalt_jax.train.metrics import log


@dataclasses.dataclass
class PhaseSpec:
    name: str                                   # component: brain, planner, policy
    phase: str                                  # config section: sft, planner_sft, policy_sft
    sources: list[tuple[list[dict], float]]     # training records with mixing weights
    val: list[dict]
    example_fn: Callable[[dict], dict]
    layout: packing.Layout                      # how its examples pack into rows
    extra: Any = None                           # initial TrainState.extra
    prepare: Callable[[bool], Callable] | None = None   # with_memory -> prepare hook
    absorb: Callable | None = None
    uses_memory: Callable[[int], bool] = lambda step: False
    # (with_memory, local batch) -> which parameter paths may rightly get no gradient this step
    grad_exempt: Callable[[bool, dict], Callable[[str], bool]] = lambda with_memory, batch: grad_check.NOTHING

    augment: pipeline.Augment | None = None     # rewrites each drawn training record
    check: Callable[[], None] | None = None     # raises a DataError for data training cannot take (run_phase's start)
    fit: list[dict] = dataclasses.field(default_factory=list)  # training records scored at each evaluation
    corpus_sources: int | None = None           # brain: the leading sources that are talk files (not paraphrases)
    # What picks the best checkpoint and drives early stopping: a function of the evaluation's
    # values, lower is better, named for the logs.
    score: Callable[[dict], float] = lambda values: values["val_loss"]
    score_name: str = "val loss"
    member: int = 0                             # of an ensemble (config.planner.members, config.policy.members)

    @property
    def directory(self) -> str:
        """Its checkpoints' directory under workdir/checkpoints."""
        return config_lib.checkpoint_dir(self.name, self.member)


def example_fn(c: ml_collections.ConfigDict, name: str,
               dec_encode: Callable[[str], list[int]] = byte_tok.encode) -> Callable[[dict], dict]:
    """Record -> example of component `name` (data/examples.py) at the config's lengths;
    `dec_encode` is the brain decoder's tokenizer."""
    if name == "brain":
        b = c.brain
        return functools.partial(examples.talk_example, enc_len=b.enc_len, dec_len=b.dec_len, n_prefix=b.n_prefix,
                                 dec_encode=dec_encode)
    if name == "planner":
        return functools.partial(examples.planner_example, max_len=c.planner.max_len)
    if name == "policy":
        return functools.partial(examples.policy_example, max_len=c.policy.max_len)
    raise ValueError(f"unknown component {name!r}")


def layout(c: ml_collections.ConfigDict, name: str) -> packing.Layout:
    """How the examples of component `name` (data/examples.py) pack into rows: the brain's
    prompts in rows of enc_len bytes beside their replies in rows of n_prefix + dec_len, the
    planner's prompt + plan in rows of max_len, the policy's goals in rows of max_len."""
    if name == "brain":
        b = c.brain
        return packing.Layout(groups=dict(enc=(b.enc_len, ("enc",)),
                                          dec=(b.n_prefix + b.dec_len, ("dec_in", "dec_tgt", "dec_w"))),
                              segments=c.sft.segments,
                              fill=dict(enc=byte_tok.PAD, dec_in=byte_tok.PAD, dec_tgt=byte_tok.PAD))
    if name == "planner":
        # Beside each row of prompt and plan, a row of the positions the loss trains (planner_sft.trained_len).
        trained = c.planner_sft.trained_len or c.planner.max_len
        return packing.Layout(groups=dict(plan=(c.planner.max_len, ("inputs", "targets", "weights")),
                                          trained=(trained, ("trained_at", "trained_targets", "trained_weights"))),
                              segments=c.planner_sft.segments,
                              fill=dict(inputs=plan_vocab.PAD, targets=plan_vocab.PAD, trained_targets=plan_vocab.PAD),
                              offsets=dict(trained_at="plan"), index_groups=("trained",))
    if name == "policy":
        return packing.Layout(groups=dict(goal=(c.policy.max_len, ("ids",))), segments=c.policy_sft.segments,
                              fill=dict(ids=byte_tok.PAD), per_example=examples.POLICY_LABELS,
                              offsets=dict(span_start="goal", span_end="goal"))
    raise ValueError(f"unknown component {name!r}")


def ramp(p: ml_collections.ConfigDict, frac: float, step):
    """Linear from 0 to 1 over `frac` of the phase's steps, then 1 (at once when frac is 0)."""
    return jnp.minimum(1.0, step / max(1, int(frac * p.steps))) if frac > 0 else jnp.float32(1.0)


def noise_rate(p: ml_collections.ConfigDict, step):
    """PAD-denoising rate at `step`: linear from 0 to noise_max over noise_ramp_frac of the steps."""
    return p.noise_max * ramp(p, p.noise_ramp_frac, step)


def brain_prepare(c: ml_collections.ConfigDict, with_memory: bool):
    K = c.brain.mem_k

    def prepare(state, batch, rng):
        noise_rng, memory_rng = jax.random.split(rng)
        dec = batch["dec_in"]
        real = (dec != byte_tok.PAD) & (dec != byte_tok.BOS) & (dec != byte_tok.EOS)
        hide = jax.random.bernoulli(noise_rng, noise_rate(c.sft, state.step), dec.shape) & real
        batch = dict(batch, dec_in=jnp.where(hide, byte_tok.PAD, dec),
                     noise_scale=ramp(c.sft, c.sft.concept_noise_ramp_frac, state.step))
        if with_memory:  # K vectors for every slot of every packed row
            pool_PxD, count = state.extra["pool"], state.extra["count"]
            filled = jnp.maximum(jnp.minimum(count, pool_PxD.shape[0]), 1)
            idx_BxnxK = jax.random.randint(memory_rng, (dec.shape[0], c.sft.segments, K), 0, filled)
            batch["memory"] = pool_PxD[idx_BxnxK]
        return batch
    return prepare


def brain_absorb(extra, aux):
    """Write this step's concept vectors (the packed slots that hold an example) into the
    ring-buffer pool."""
    concept_MxD = jax.lax.stop_gradient(aux["concept"]).astype(jnp.float32).reshape(-1, aux["concept"].shape[-1])
    real_M = aux["slots"].reshape(-1)
    pool_PxD, count = extra["pool"], extra["count"]
    P = pool_PxD.shape[0]
    order_M = jnp.cumsum(real_M) - 1
    idx_M = jnp.where(real_M, (count + order_M) % P, P)  # P: out of range, dropped
    pool_PxD = pool_PxD.at[idx_M].set(concept_MxD, mode="drop")
    return dict(pool=pool_PxD, count=count + jnp.sum(real_M, dtype=count.dtype))


def brain_grad_exempt(with_memory: bool, batch: dict) -> Callable[[str], bool]:
    return grad_check.NOTHING if with_memory else grad_check.matching(MEMORY_PATHS)


def policy_grad_exempt(with_memory: bool, batch: dict) -> Callable[[str], bool]:
    """Argument heads only learn from batches holding their kind of argument."""
    kinds = set(np.unique(batch["arg_kind"]).tolist())
    unused = ([] if ARG_KINDS.index("span") in kinds else ["span/"]) + \
             ([] if ARG_KINDS.index("from") in kinds else ["from_step/", "pick/"])
    return grad_check.matching(unused)


def memory_schedule(c: ml_collections.ConfigDict, step: int) -> bool:
    """Whether step attaches memory: a pure function of (seed, step), so resume repeats it."""
    p = c.sft
    if step < max(1, int(p.memory_warmup_frac * p.steps)):
        return False
    return bool(np.random.default_rng([c.seed, step]).random() < p.memory_prob)


def brain_spec(c: ml_collections.ConfigDict, dec_encode: Callable[[str], list[int]]) -> PhaseSpec:
    loaded = formats.load_talk(c.data.talk_files)
    sources, val = [], []
    for i, (pairs, weight) in enumerate(loaded):
        train_part, val_part = pipeline.split(pairs, c.data.val_frac, c.data.split_seed + i)
        sources.append((train_part, weight))
        val += val_part
    b = c.brain
    truncated = functools.partial(examples.talk_truncated, enc_len=b.enc_len, dec_len=b.dec_len,
                                  dec_encode=dec_encode)
    for pairs, _ in loaded:
        examples.warn_truncated(pairs, truncated)
    extra = dict(pool=jnp.zeros((c.sft.memory_pool, b.d_model), jnp.float32), count=jnp.zeros((), jnp.int32))
    # The brain is kept for reproducing its training replies (the talk targets), not for its
    # val loss: every val response is unseen, so val loss turns upward after a few hundred
    # steps while the share of training replies reproduced exactly still climbs.
    corpus = [r for records, _ in sources for r in records]
    fit = fit_sample(corpus, c.sft.fit_sample, c.data.split_seed)
    # Other wordings of the training prompts, trained on only: a pair is kept when its response is
    # a training response, so val replies stay unseen and another corpus ignores them.
    trained = {r["response"] for r in corpus}
    for pairs, weight in formats.load_talk(c.data.talk_paraphrases, "data.talk_paraphrases"):
        kept = [p for p in pairs if p["response"] in trained]
        log(f"[brain] {examples.where(pairs[0]).rpartition(':')[0]}: {len(kept)} of {len(pairs)} paraphrases "
            f"kept (the others answer with a response not trained on)")
        if kept:
            examples.warn_truncated(kept, truncated)
            sources.append((kept, weight))
    rewrite = functools.partial(augment.sometimes, p=c.sft.prompt_augment, rewrite=augment.talk_prompt)
    return PhaseSpec("brain", "sft", sources, val, example_fn(c, "brain", dec_encode), layout(c, "brain"), extra=extra,
                     corpus_sources=len(loaded),
                     augment=rewrite if c.sft.prompt_augment > 0 else None,
                     prepare=functools.partial(brain_prepare, c), absorb=brain_absorb,
                     uses_memory=functools.partial(memory_schedule, c), grad_exempt=brain_grad_exempt, fit=fit,
                     score=functools.partial(exact_score, key="fit_exact", n=len(fit)),
                     score_name="training replies missed (+ val loss tie-break)")


def fit_sample(records: list[dict], n: int, seed: int) -> list[dict]:
    """At most n of the training records, a seeded sample in file order."""
    keep = np.sort(np.random.default_rng(seed).permutation(len(records))[:n])
    return [records[i] for i in keep]


def goal_spec(c: ml_collections.ConfigDict, name: str, member: int = 0) -> PhaseSpec:
    """The planner's or the policy's phase; `member` k of an ensemble trains with the seed
    config.seed + k (the caller's config sets it: `member_config`) into its own directory."""
    goals = examples.load_goals(c.data.goals_file)
    train_part, val = pipeline.split(goals, c.data.val_frac, c.data.split_seed)
    if name == "planner":
        truncated, phase, max_len = examples.planner_truncated, "planner_sft", c.planner.max_len
    else:
        truncated, phase, max_len = examples.policy_truncated, "policy_sft", c.policy.max_len
    examples.warn_truncated(goals, functools.partial(truncated, max_len=max_len))
    sources = [(train_part, 1.0)]
    for path, weight in config_lib.weighted_files(c.data.goals_extra, "data.goals_extra"):
        extra = examples.load_goals(path)
        examples.warn_truncated(extra, functools.partial(truncated, max_len=max_len))
        sources.append((extra, weight))
    # Prompts of the talk corpus: what people say when they want no tool, questions about the
    # tools included ("what does run tests do?").
    for pairs, weight in formats.load_talk(c.data.goals_chat, "data.goals_chat"):
        chat = [examples.chat_goal(p) for p in pairs]
        examples.warn_truncated(chat, functools.partial(truncated, max_len=max_len))
        sources.append((chat, weight))
    spec = PhaseSpec(name, phase, sources, val, example_fn(c, name), layout(c, name), member=member)
    if name == "planner" and c.planner_sft.trained_len:  # at training's start, not at every load
        spec.check = functools.partial(examples.check_trained_len, [r for records, _ in sources for r in records] + val,
                                       max_len, c.planner_sft.trained_len)
    if name == "policy":
        spec.grad_exempt = policy_grad_exempt
    spec.score = functools.partial(exact_score, key="val_exact", n=len(val))
    spec.score_name = "val error (+ val loss tie-break)"
    if c.data.goal_augment > 0:
        rewrite = augment.augment
        if name == "planner" and c.planner_sft.trained_len:  # a longer argument may not outgrow the row
            rewrite = functools.partial(augment.augment, fits=functools.partial(
                examples.plan_fits, max_len=c.planner.max_len, trained_len=c.planner_sft.trained_len))
        spec.augment = functools.partial(augment.sometimes, p=c.data.goal_augment, rewrite=rewrite)
    return spec


def member_config(c: ml_collections.ConfigDict, member: int) -> ml_collections.ConfigDict:
    """The config member k of an ensemble trains with: config.seed + k (its initial parameters,
    its draw order and dropout), the rest as given; member 0's is `c` itself."""
    if not member:
        return c
    out = copy.deepcopy(c)
    out.seed = c.seed + member
    return out


def exact_score(values: dict, key: str, n: int) -> float:
    """The share of n examples not reproduced exactly (values[key] is the exact share), ties
    broken by val loss.

    For the goal phases the val goals, for the brain a sample of its training pairs. Val loss
    is the wrong signal for either: it turns upward (confident mistakes on a few examples)
    long before exact match stops improving. The tie-break stays below one example's share
    (1/n) for any loss: min(loss, 10) / (20 n) <= 1 / (2 n).
    """
    return (1.0 - values[key]) + min(values["val_loss"], 10.0) / (20.0 * max(n, 1))
