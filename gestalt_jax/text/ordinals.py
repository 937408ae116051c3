"""The hits, lines or entries a goal names by number, in the order it names them, by rule.

"open the second hit" names 2, "hits 1 and 2" and "the top two results" name 1 and 2, "entry
number two" 2, "the 4th and fifth hits" 4 and 5, "error #4" 4, "the top hit" 1. What is not a
pick is left out: "the second search" (a step), "first the Lean proofs" (an order word), the
markers of a numbered list ("1/ train 2/ note the loss", "#1 ... #2 ..."), numbers in quoted text.
The plan decoder pins a plan's j-th `FROM k PICK n` to the j-th number named here, where the goal
names one (infer/plan_fsm.py); a goal that names none leaves its picks to the planner.

On the three goal files the rule names a pick for 3,499 of the 6,961 goals whose plans pick, and
its j-th number is the plan's j-th pick in all but 10 (all synthetic: a pick left unnamed before
a named one, "remember the final loss ... then jot down the 4th error", or a misspelt number, "the
fourtth and sixth hits"); every goal of train.jsonl (training and val) and held_out.jsonl agrees.
"""

from __future__ import annotations

import re

from gestalt_jax.text import clauses

_CARDINALS = {w: i for i, w in enumerate("one two three four five six seven eight nine ten".split(), 1)}
_ORDINALS = {w: i for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth".split(), 1)}
_ORDINALS |= {f"{i}{s}": i for i, s in zip(range(1, 11), "st nd rd th th th th th th th".split())}
_NOUN = (r"(?:hits?|match(?:es)?|results?|entr(?:y|ies)|items?|files?|errors?|failures?|warnings?|lines?|spots?"
         r"|ones?|things?|occurrences?)")
_CARD = "|".join(_CARDINALS) + r"|\d{1,2}"
_ORD = "|".join(_ORDINALS)
_MANY = "|".join(w for w in _CARDINALS if w != "one") + r"|\d{1,2}"  # "the first two", not "the second one"
_NOT_A_PICK = r"(?!\s+(?:search|grep|query|step|listing|list|task|command|run|time|pass|one\s+of)\b)"
_MENTION = re.compile(
    rf"\b(?:top|first)\s+(?P<top_n>{_CARD})\b"  # the top two results: 1, 2
    rf"|\btop\s+(?P<top>{_NOUN})\b"  # the top hit: 1
    rf"|\bthe\s+(?P<ord>{_ORD})\b(?!\s+(?:{_MANY})\b){_NOT_A_PICK}"  # the second hit, the 4th (not the first two)
    rf"|\b{_NOUN}\s+(?:number\s+|no\.\s*|#)?(?P<card>{_CARD})\b"  # hits 1, entry number two, error #4
    rf"|\b(?:open|show|read|display|cat|remember|note|save|keep)\s+#(?P<hash>\d{{1,2}})\b"  # open #2
    rf"|(?<=\s)(?:and|,)\s*(?:the\s+|#|number\s+)?(?P<more>{_ORD}|{_CARD})\b{_NOT_A_PICK}",  # ... and 2, and the fifth
    re.IGNORECASE)
_LIST_MARK = re.compile(r"(?:^|(?<=\s))(?:#|\()?(\d{1,2})(?:[./):]|(?=\s))(?=\s|$)")


def _value(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else _CARDINALS.get(word) or _ORDINALS[word]


def _blank_list_marks(text: str) -> str:
    """`text` with the markers of a numbered list ("1/", "2.", "(3)", "#4") blanked, where it has
    markers 1 and then 2 (offsets kept)."""
    marks = [m for m in _LIST_MARK.finditer(text) if m.group().strip()[0] in "#(" or m.group().strip()[-1] in "./):"]
    values = [int(m.group(1)) for m in marks]
    if 1 not in values or 2 not in values[values.index(1):]:
        return text
    for m in marks:
        text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end():]
    return text


def picks(goal: str) -> list[int]:
    """The numbers of the hits, lines or entries `goal` names, in the order it names them."""
    text = _blank_list_marks(clauses.mask_quotes(goal))
    out, last_end = [], None
    for m in _MENTION.finditer(text):
        g = m.groupdict()
        if g["more"] is not None:  # "and 2" counts only right after another mention
            if last_end is None or text[last_end : m.start()].strip(" ,"):
                continue
            out.append(_value(g["more"]))
        elif g["top_n"] is not None:
            out += range(1, _value(g["top_n"]) + 1)
        elif g["top"] is not None:
            out.append(1)
        else:
            out.append(_value(g["ord"] or g["card"] or g["hash"]))
        last_end = m.end()
    return out
