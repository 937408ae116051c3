"""A goal cut into clauses by rule: where one request may end and the next begin.

The cut falls at sentence ends, semicolons, arrows, "then" and "and" in their joining forms,
order words ("after that", "finally"), commas and list numbers ("1)", "step 2:"); quoted text
is never cut. The rule over-cuts on purpose ("hey, run the tests" is two clauses, "remember
that a and b" too): the planner reads each clause's words on their own and learns which
clauses ask for a step (model/planner.py), so a cut too many costs little and a cut missed
merges two requests. At most MAX_CLAUSES clauses; the rest of the goal stays in the last.
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


def starts(goal: str) -> list[int]:
    """Offsets in `goal` (str indices) where its clauses start: 0 first, then after each cut,
    at most MAX_CLAUSES in all. A clause may be empty of words (the goal ends in a cut)."""
    masked = _QUOTED.sub(lambda m: "\0" * len(m.group()), goal)
    out = [0]
    for m in _SEPARATOR.finditer(masked):
        if 0 < m.end() < len(goal) and m.end() > out[-1] and len(out) < MAX_CLAUSES:
            out.append(m.end())
    return out


def cut(goal: str) -> list[str]:
    """The clauses of `goal`, separators included (their concatenation is the goal)."""
    at = starts(goal) + [len(goal)]
    return [goal[a:b] for a, b in zip(at, at[1:])]
