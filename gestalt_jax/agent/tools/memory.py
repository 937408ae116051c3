"""MEMORY_ADD and MEMORY_SEARCH: facts the agent keeps across runs (agent/memory.py).

The store lives in the run's workdir, not the workspace: remembering is not a workspace write.
"""

from __future__ import annotations

from gestalt_jax.agent.memory import store
from gestalt_jax.agent.tools.base import OK, Context, Item, Result, ToolError

SHOWN_CHARS = 80  # of a fact or query quoted in a summary


def _text(tool: str, args: dict[str, str], what: str) -> str:
    text = (args.get("text") or "").strip()
    if not text:
        raise ToolError(f"{tool} needs a text: {what}")
    return text


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 3] + "..."


def memory_add(ctx: Context, args: dict[str, str]) -> Result:
    """MEMORY_ADD: stores the text (once: the same text again keeps its first id); the goal being
    worked on is kept as its source."""
    text = _text("MEMORY_ADD", args, "the fact to remember")
    fact_id = store(ctx).add(text, source=ctx.goal)
    return Result("MEMORY_ADD", OK, f"remembered #{fact_id}: {_short(text)}", [Item(text)], data=dict(id=fact_id))


def memory_search(ctx: Context, args: dict[str, str]) -> Result:
    """MEMORY_SEARCH: the facts sharing most words with the text, best first (BM25), at most
    config.agent.memory_max_hits; ok with none."""
    query = _text("MEMORY_SEARCH", args, "words to look for in what was remembered")
    hits = store(ctx).search(query, ctx.agent.memory_max_hits)
    if not hits:
        return Result("MEMORY_SEARCH", OK, f"nothing remembered about {_short(query)!r}", data=dict(ids=[]))
    summary = f"{len(hits)} fact{'s' * (len(hits) != 1)} remembered about {_short(query)!r}"
    return Result("MEMORY_SEARCH", OK, summary, [Item(h.text) for h in hits],
                  data=dict(ids=[h.id for h in hits], scores=[round(h.score, 4) for h in hits]))


TOOLS = {"MEMORY_ADD": memory_add, "MEMORY_SEARCH": memory_search}
