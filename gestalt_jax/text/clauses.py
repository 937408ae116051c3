"""A goal cut into clauses by rule: where one request may end and the next begin.

The cut falls at sentence ends, semicolons, arrows, "then" and "and" in their joining forms,
order words ("after that", "finally"), commas and list numbers ("1)", "step 2:"); quoted text
is never cut. The rule over-cuts on purpose ("hey, run the tests" is two clauses, "remember
that a and b" too): the planner reads each clause's words on their own and learns which
clauses ask for a step (model/planner.py), so a cut too many costs little and a cut missed
merges two requests. At most MAX_CLAUSES clauses; the rest of the goal stays in the last.

`requests` gives the clauses without their joining and order words, each a request that can be
read on its own (infer/decide.py has the policy read them); `in_order` says whether the goal
asks for them in the order it writes them, and `run_order` gives them in the order they run.
"""

from __future__ import annotations

import re

MAX_CLAUSES = 8

_QUOTED = re.compile(r"\"[^\"]*\"|'[^'\s][^']*'|`[^`]*`")
_SEPARATOR = re.compile(
    r"\s*(?:->|=>|&&|\u2192)\s*"
    r"|\s*[;.!?]\s+(?:and\s+)?(?:then\s+)?"
    r"|,?\s+and\s+then\s+|,\s*then\s+|\s+then\s+|,\s*and\s+(?:also\s+)?|\s+and\s+also\s+|,\s*plus\s+"
    r"|,?\s*(?:after that|afterwards|after which|next|finally|lastly|subsequently)\s*,?\s+"
    r"|\s+and\s+|,\s+"
    r"|(?:^|\s)\(?\d[).:]\s+|\bstep \d+:\s*",
    re.IGNORECASE)


def mask_quotes(goal: str) -> str:
    """`goal` with each quoted text's characters replaced by NULs (same length, so offsets hold)."""
    return _QUOTED.sub(lambda m: "\0" * len(m.group()), goal)


def starts(goal: str) -> list[int]:
    """Offsets in `goal` (str indices) where its clauses start: 0 first, then after each cut,
    at most MAX_CLAUSES in all. A clause may be empty of words (the goal ends in a cut)."""
    masked = mask_quotes(goal)
    out = [0]
    for m in _SEPARATOR.finditer(masked):
        if 0 < m.end() < len(goal) and m.end() > out[-1] and len(out) < MAX_CLAUSES:
            out.append(m.end())
    return out


def cut(goal: str) -> list[str]:
    """The clauses of `goal`, separators included (their concatenation is the goal)."""
    at = starts(goal) + [len(goal)]
    return [goal[a:b] for a, b in zip(at, at[1:])]


# Joining and order words at either end of a clause: the requests are what lies between them.
_JOINERS = r"and|then|also|plus|so|if so|next|finally|lastly|afterwards|after that|first|second|third|too"
_LEADING = re.compile(rf"^(?:[\s,;:.!?]|\b(?:{_JOINERS})\b)+", re.IGNORECASE)
_TRAILING = re.compile(rf"(?:[\s,;:.!?]|->|=>|&&|\u2192|\b(?:{_JOINERS})\b)+$", re.IGNORECASE)


def requests(goal: str) -> list[str]:
    """The clauses of `goal` with their joining and order words stripped ("Enumerate pkg/storage
    then " -> "Enumerate pkg/storage"), the ones left with no words dropped ("afterwards ")."""
    out = []
    for clause in cut(goal):
        text = _LEADING.sub("", _TRAILING.sub("", clause)).strip()
        if any(ch.isalnum() for ch in text):
            out.append(text)
    return out


_BEFORE = re.compile(r"\b(?:before|beforehand|prior to)\b", re.IGNORECASE)
_FIRST_LATER = re.compile(r"^\W*(?:but\s+)?first\b|\bfirst\W*$", re.IGNORECASE)


def in_order(goal: str) -> bool:
    """Whether the goal's requests are written in the order they are to run: no "before" ("before
    training, evaluate") and no later clause that puts itself first ("train, but run the tests
    first"); quoted text does not count."""
    masked = mask_quotes(goal)
    return not _BEFORE.search(masked) and not any(_FIRST_LATER.search(c) for c in cut(masked)[1:])


# A last clause that puts itself before the rest: ", but first A", ", but before that A", ", but A first".
_BUT = re.compile(r",\s*but\s+", re.IGNORECASE)
# ...unless that "first" is a pick: ", but only open the first".
_THE_FIRST = re.compile(r"\bthe\s+(?:very\s+)?first[^\w\0]*$", re.IGNORECASE)
_BUT_FIRST = re.compile(r"^(?:first|before that|beforehand)\b[^\w\0]*(?P<a>.*)$|^(?P<b>.*?)[^\w\0]*\bfirst[^\w\0]*$",
                        re.IGNORECASE | re.DOTALL)


def run_order(goal: str) -> list[str] | None:
    """The goal's requests in the order they are to run: `requests` when the goal writes them in that
    order; for "B, but first A" (", but before that A", ", but A first") where A is one request and B
    is written in order, A's request then B's ("lint the docs and check the build, but first open
    README.md" -> "open README.md", "lint the docs", "check the build"); None for any other order
    ("before training, evaluate") and where "first" is a pick ("search for X, but only open the
    first"), which are left to the planner."""
    if in_order(goal):
        return requests(goal)
    masked = mask_quotes(goal)
    buts = list(_BUT.finditer(masked))
    if not buts:
        return None
    head, tail = buts[-1].start(), buts[-1].end()
    m = _BUT_FIRST.match(masked[tail:])
    if not m or _THE_FIRST.search(masked[tail:]):
        return None
    a0, a1 = m.span("a") if m.group("a") is not None else m.span("b")
    first, rest = goal[tail + a0:tail + a1], goal[:head]
    if len(requests(first)) != 1 or not in_order(first) or not in_order(rest):
        return None
    return requests(first) + requests(rest)
