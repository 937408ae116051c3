"""The 15 tools by name (text/labels.TOOLS), grouped by kind:

files.py  SEARCH, LIST_FILES, READ_FILE, PATCH_DRY_RUN     build.py  RUN_TESTS, CHECK_BUILD, FIX_TESTS
docs.py   DOCS_LINT                                         proofs.py PROVE_ALGEBRA, LEAN_SUITE
memory.py MEMORY_ADD, MEMORY_SEARCH                         meta.py   EVAL, TRAIN (--allow_meta)
talk.py   TALK
"""

from gestalt_jax.agent.tools import build, docs, files, memory, meta, proofs, talk
from gestalt_jax.agent.tools.base import ToolFn
from gestalt_jax.text import labels

REGISTRY: dict[str, ToolFn] = {}
for _module in (talk, build, docs, files, proofs, memory, meta):
    REGISTRY.update(_module.TOOLS)
if set(REGISTRY) != set(labels.TOOLS):
    raise ImportError(f"agent tools {sorted(REGISTRY)} differ from the label space {sorted(labels.TOOLS)}")

# The tools whose items name a workspace file (Item.path), so `FROM k PICK n` gives a later path
# argument a file. Every tool's result can hold items, but the others' are text only (a reply, a
# note, a recalled episode, an expanded side, a bench's scores, a summary line).
FILE_ITEMS = frozenset({"SEARCH", "LIST_FILES", "READ_FILE", "PATCH_DRY_RUN", "RUN_TESTS", "CHECK_BUILD",
                        "FIX_TESTS", "DOCS_LINT", "LEAN_SUITE"})
