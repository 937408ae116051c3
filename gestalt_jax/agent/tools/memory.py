"""MEMORY_ADD and MEMORY_SEARCH: what the agent keeps across runs (agent/memory.py).

A remembered fact is an episode whose goal and answer are the fact. When a brain is trained, the
run puts its concept function in ctx.services["concept"] (text -> (float32 [D], brain identity)):
facts are then stored with their concept and searched by meaning as well as by words; without it,
by words only.

The store lives in the run's workdir, not the workspace: remembering is not a workspace write.
"""

from __future__ import annotations

from gestalt_jax.agent import memory
from gestalt_jax.agent.tools.base import OK, Context, Item, Result, ToolError

SHOWN_CHARS = 80  # of a fact or query quoted in a summary


def _text(tool: str, args: dict[str, str], what: str) -> str:
    text = (args.get("text") or "").strip()
    if not text:
        raise ToolError(f"{tool} needs a text: {what}")
    return text


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def _store(ctx: Context) -> memory.MemoryStore:
    try:
        return memory.store(ctx)
    except memory.MemoryFileError as e:
        raise ToolError(str(e)) from None


def _concept(ctx: Context, text: str) -> dict:
    """{concept, brain} of `text` for add/search when a brain is there, {} otherwise."""
    concept_fn: memory.ConceptFn | None = ctx.services.get("concept")
    if concept_fn is None:
        return {}
    vector, brain = concept_fn(text)
    return dict(concept=vector, brain=brain)


def memory_add(ctx: Context, args: dict[str, str]) -> Result:
    """MEMORY_ADD: stores the text as a fact (once: the same fact again keeps its first id and
    counts a use)."""
    text = _text("MEMORY_ADD", args, "the fact to remember")
    fact_id = _store(ctx).add(text, **_concept(ctx, text), plan=[{"tool": "MEMORY_ADD", "args": {"text": text}}],
                              response=text, success=True)
    return Result("MEMORY_ADD", OK, f"remembered #{fact_id}: {_short(text)}", [Item(text)], data=dict(id=fact_id))


def _recalled(episode) -> str:
    """A fact as it was given; a run's episode as its goal and the first line of its answer."""
    if [step["tool"] for step in episode.plan] == ["MEMORY_ADD"] and episode.response == episode.goal:
        return episode.goal
    first = (episode.response.splitlines() or [""])[0]
    return f"#{episode.id} {episode.goal!r}: {first}" if first else f"#{episode.id} {episode.goal!r}"


def memory_search(ctx: Context, args: dict[str, str]) -> Result:
    """MEMORY_SEARCH: the episodes and facts that fit the text best (by concept and keywords,
    fused), at most config.agent.memory_max_hits; ok with none."""
    query = _text("MEMORY_SEARCH", args, "words to look for in what was remembered")
    # Earlier questions only echo the question: what was remembered is in the other episodes.
    hits = [h for h in _store(ctx).search(query, **_concept(ctx, query), k=ctx.agent.memory_max_hits)
            if [step["tool"] for step in h.episode.plan] != ["MEMORY_SEARCH"]]
    if not hits:
        return Result("MEMORY_SEARCH", OK, f"nothing remembered about {_short(query)!r}", data=dict(ids=[]))
    summary = f"{len(hits)} thing{'s' * (len(hits) != 1)} remembered about {_short(query)!r}"
    return Result("MEMORY_SEARCH", OK, summary, [Item(_recalled(h.episode)) for h in hits],
                  data=dict(ids=[h.id for h in hits], scores=[round(h.score, 4) for h in hits]))


TOOLS = {"MEMORY_ADD": memory_add, "MEMORY_SEARCH": memory_search}
