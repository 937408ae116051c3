"""TALK: the trained brain's reply to the goal, the ranked reply `gestalt gallery` shows (the most
likely of the argmax reply and config.gen.candidates sampled ones; the argmax reply when that is 0)."""

from __future__ import annotations

from gestalt_jax.agent.tools.base import OK, Context, Item, Result, ToolError


def brain(ctx: Context):
    """The workdir's trained brain (infer/trained.TrainedBrain), loaded once per run."""
    if "brain" not in ctx.services:
        from gestalt_jax.infer import trained  # jax-heavy: only a plan that talks pays for it
        try:
            ctx.services["brain"] = trained.load(ctx.config, ctx.workdir, "brain")
        except FileNotFoundError as e:
            raise ToolError(str(e)) from None
    return ctx.services["brain"]


def talk(ctx: Context, args: dict[str, str]) -> Result:
    prompt = args.get("text") or ctx.goal
    if not prompt.strip():
        raise ToolError("TALK replies to the goal; none was given (gestalt run --plan=F \"goal\")")
    reply = brain(ctx).ranked([prompt])[0]
    return Result("TALK", OK, reply, [Item(reply)], data=dict(prompt=prompt))


TOOLS = {"TALK": talk}
