"""The label space shared by policy, planner and agent; the names are the interface."""

from typing import Sequence

TOOLS = (
    "TALK",
    "RUN_TESTS",
    "CHECK_BUILD",
    "FIX_TESTS",
    "DOCS_LINT",
    "SEARCH",
    "LIST_FILES",
    "READ_FILE",
    "PATCH_DRY_RUN",
    "PROVE_ALGEBRA",
    "LEAN_SUITE",
    "MEMORY_ADD",
    "MEMORY_SEARCH",
    "EVAL",
    "TRAIN",
)

# END = 0 so an all-zero slot row means "no action".
ACTIONS = ("END",) + TOOLS

# TALK as an intent means the goal is conversation; COMPOSITE marks multi-step goals.
INTENTS = tuple("CONVERSATION" if t == "TALK" else t for t in TOOLS) + ("COMPOSITE",)

ARG_NAMES = ("pattern", "path", "text", "lhs", "rhs")

# Argument order here is the order the planner emits them in.
TOOL_ARGS = {tool: () for tool in TOOLS} | {
    "SEARCH": ("pattern",),
    "LIST_FILES": ("path",),
    "READ_FILE": ("path",),
    "PATCH_DRY_RUN": ("path",),
    "MEMORY_ADD": ("text",),
    "MEMORY_SEARCH": ("text",),
    "PROVE_ALGEBRA": ("lhs", "rhs"),
}

NUM_SLOTS = 6  # policy action slots
MAX_STEPS = 8  # plan steps


def index(names: Sequence[str], name: str) -> int:
    """Position of `name` in `names`; ValueError naming the label and the valid ones."""
    try:
        return names.index(name)
    except ValueError:
        raise ValueError(f"unknown label {name!r}; valid: {', '.join(names)}") from None
