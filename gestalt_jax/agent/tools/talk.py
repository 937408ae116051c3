"""TALK: the trained brain's reply to the goal, the ranked reply `gestalt gallery` shows (the most
likely of the argmax reply and config.gen.candidates sampled ones; the argmax reply when that is 0)."""

from __future__ import annotations

from gestalt_jax.agent.tools.base import OK, Context, Item, Result, ToolError


def _brain(ctx: Context):
    """(brain, params, decode) of the workdir's trained brain, loaded once per run."""
    if "brain" not in ctx.services:
        from gestalt_jax.evals import talk  # jax-heavy: only a plan that talks pays for it
        from gestalt_jax.model.brain import build_brain
        from gestalt_jax.train import mesh as mesh_lib
        try:
            params, tok, _ = talk.load(ctx.config, ctx.workdir, mesh_lib.make_mesh(ctx.config))
        except FileNotFoundError as e:
            raise ToolError(str(e)) from None
        ctx.services["brain"] = (build_brain(ctx.config), talk.host_params(params), tok.decode)
    return ctx.services["brain"]


def talk(ctx: Context, args: dict[str, str]) -> Result:
    prompt = args.get("text") or ctx.goal
    if not prompt.strip():
        raise ToolError("TALK replies to the goal; none was given (gestalt run --plan=F \"goal\")")
    from gestalt_jax.evals import talk as talk_lib
    brain, params, decode = _brain(ctx)
    reply_fn = talk_lib.ranked_replies if ctx.config.gen.candidates else talk_lib.replies
    reply = reply_fn(ctx.config, brain, params, decode, [prompt])[0]
    return Result("TALK", OK, reply, [Item(reply)], data=dict(prompt=prompt))


TOOLS = {"TALK": talk}
