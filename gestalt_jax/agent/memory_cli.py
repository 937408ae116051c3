"""`gestalt memory list [N] | search "<text>" | forget <id>`: look into the agent's episodic memory
(agent/memory.py) of a workdir outside a run, and prune it.

One line per episode, starting with its id (what `forget` takes):
    #12  0.031  remember that the deploy key rotates on fridays -> ...
Exit codes: 0 done; 1 nothing there (no memory file, no episodes, no hit, no such id) or the file
cannot be used; 2 usage error. list and search never create the memory file.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import typing
from pathlib import Path

from gestalt_jax.agent import memory
from gestalt_jax.agent.tools.base import shorten

if typing.TYPE_CHECKING:
    import ml_collections

USAGE = 'gestalt memory list [N] | search "<text>" | forget <id>'
LIST_DEFAULT = 20  # episodes `list` shows without N
SHOWN_CHARS = 60   # of a goal or response on one line


def _usage(message: str) -> int:
    print(f"{message}; usage: {USAGE}", file=sys.stderr)
    return 2


def _count(text: str) -> int | None:
    """A positive number as typed (`12` or `#12`, as list and search show ids); None otherwise."""
    text = text.removeprefix("#")
    return int(text) if text.isdecimal() and int(text) > 0 else None


def _short(text: str) -> str:
    return shorten(text, SHOWN_CHARS)


def describe(episode: memory.Episode) -> str:
    """Goal -> response on one line (a fact, whose response is its goal, shows once)."""
    shown = _short(episode.goal)
    if episode.response and episode.response != episode.goal:
        shown += f" -> {_short(episode.response)}"
    return shown + ("" if episode.success else "  (failed)")


def run(c: ml_collections.ConfigDict, workdir: str | Path, args: list[str],
        concept: memory.ConceptFn | None = None) -> int:
    """`gestalt memory <args>` on the memory of `workdir` (config c.agent). `args` are the words
    after `memory`. `concept` (text -> (float32 [D], brain identity)), when a brain is trained,
    lets search rank by meaning as well as by words."""
    command, rest = (args[0], args[1:]) if args else ("", [])
    if command == "list":
        limit = LIST_DEFAULT if not rest else _count(rest[0]) if len(rest) == 1 else None
        if limit is None:
            return _usage(f"gestalt memory list: expected at most one number of episodes N >= 1, "
                          f"got {' '.join(rest)!r}")
    elif command == "search":
        text = " ".join(rest).strip()
        if not text:
            return _usage("gestalt memory search: expected the text to look for, in quotes")
    elif command == "forget":
        episode_id = _count(rest[0]) if len(rest) == 1 else None
        if episode_id is None:
            return _usage(f"gestalt memory forget: expected one episode id (a number `list` shows), "
                          f"got {' '.join(rest)!r}")
    else:
        return _usage(f"gestalt memory: expected list, search or forget, got {command!r}" if command
                      else "gestalt memory: expected a command")

    path = memory.memory_path(workdir, c.agent)
    if not path.is_file():
        print(f"no memory yet in {path}")
        return 1
    try:
        store = memory.MemoryStore.from_config(workdir, c.agent)
    except (memory.MemoryFileError, sqlite3.Error) as e:
        print(f"gestalt memory: {e}", file=sys.stderr)
        return 1
    try:
        if command == "list":
            episodes = store.list(limit)
            for e in episodes:
                stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.time))
                print(f"#{e.id}  {stamp}  {e.uses} use{'s' * (e.uses != 1)}  {describe(e)}")
            if not episodes:
                print(f"no episodes in {path}")
            return 0 if episodes else 1
        if command == "search":
            vector, brain = concept(text) if concept is not None else (None, None)
            hits = store.search(text, concept=vector, brain=brain, k=c.agent.memory_max_hits)
            for h in hits:
                print(f"#{h.id}  {h.score:.3f}  {describe(h.episode)}")
            if not hits:
                print(f"nothing remembered about {_short(text)!r} in {path}")
            return 0 if hits else 1
        if store.forget(episode_id):
            print(f"forgot #{episode_id}")
            return 0
        print(f"no episode #{episode_id} in {path}")
        return 1
    except sqlite3.Error as e:  # the file locked by another process past the busy timeout, disk full, ...
        print(f"gestalt memory: {path}: {e}", file=sys.stderr)
        return 1
    finally:
        store.close()
