"""TALK: the trained brain's reply to the goal, the ranked reply `gestalt gallery` shows (the most
likely of the argmax reply and config.gen.candidates sampled ones; the argmax reply when that is 0),
with the episodes recalled for the goal on the decoder's cross-attention path."""

from __future__ import annotations

import numpy as np

from gestalt_jax.agent import memory as memory_lib
from gestalt_jax.agent.tools.base import OK, Context, Item, Result, ToolError


def brain(ctx: Context):
    """The workdir's trained brain (infer/trained.TrainedBrain), loaded once per run; it also gives
    the memory its concepts (ctx.services["concept"])."""
    if "brain" not in ctx.services:
        from gestalt_jax.infer import trained  # jax-heavy: only a plan that talks pays for it
        try:
            ctx.services["brain"] = trained.load(ctx.config, ctx.workdir, "brain")
        except FileNotFoundError as e:
            raise ToolError(str(e)) from None
    b = ctx.services["brain"]
    ctx.services.setdefault("concept", b.concept)
    return b


def recall(ctx: Context, text: str) -> tuple[list[int], np.ndarray | None]:
    """(ids, concepts [1, mem_k, D] or None) of the episodes recalled for `text`: at most
    config.agent.memory_max_hits ids, the first config.brain.mem_k concepts of this brain.
    Computed once per text and run (ctx.services["recalled_for"]), so TALK reuses the run's recall."""
    cached = ctx.services.get("recalled_for")
    if cached and cached[0] == text:
        return cached[1], cached[2]
    concept_fn = ctx.services.get("concept")
    if concept_fn is None:
        return [], None
    concept, identity = concept_fn(text)
    hits = memory_lib.store(ctx).search(text, concept=concept, brain=identity, k=ctx.agent.memory_max_hits)
    vectors = [h.episode.concept for h in hits if h.episode.concept is not None and h.episode.brain == identity]
    mem_k = ctx.services["brain"].config.brain.mem_k if "brain" in ctx.services else len(vectors)
    # Always mem_k vectors (what the brain trained with, and one compiled shape): fewer are repeated
    # in turn, which attention weighs exactly like the originals when their count divides mem_k.
    memory = np.resize(np.stack(vectors[:mem_k]), (mem_k, vectors[0].size))[None] if vectors else None
    ctx.services["recalled_for"] = (text, [h.id for h in hits], memory)
    return [h.id for h in hits], memory


def talk(ctx: Context, args: dict[str, str]) -> Result:
    prompt = args.get("text") or ctx.goal
    if not prompt.strip():
        raise ToolError("TALK replies to the goal; none was given (gestalt run --plan=F \"goal\")")
    b = brain(ctx)
    ids, memory = recall(ctx, prompt)
    reply = b.ranked([prompt], memory=memory)[0]
    return Result("TALK", OK, reply, [Item(reply)], data=dict(prompt=prompt, memory_ids=ids))


TOOLS = {"TALK": talk}
