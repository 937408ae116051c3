"""The planner's vocabulary, plan encoding and the plan parser.

A plan is `[THINK word* ENDTHINK] (STEP tool (ARG:name value)*)+ EOP EOS`, where a value
is `QUOTE char+ ENDQUOTE` (a span of the goal) or `FROM S<k> PICK N<n>` (the n-th
hit/line of step k). Arguments are optional but, when present, come in the tool's
labels.TOOL_ARGS order, each at most once. Char tokens are the 256 byte values, so
any goal in any language encodes as its UTF-8 bytes.
"""

import functools
from typing import Sequence

import numpy as np

from gestalt_jax.text import clauses, labels

NUM_PICKS = 16  # a step's result is addressed by its first NUM_PICKS hits/lines

_SPECIALS = ("PAD", "BOS", "EOS")
_STRUCTURAL = ("STEP", "EOP", "THINK", "ENDTHINK", "FROM", "PICK", "QUOTE", "ENDQUOTE")
WORDS = (
    "need",
    "find",
    "first",
    "then",
    "next",
    "finally",
    "read",
    "file",
    "files",
    "search",
    "list",
    "tests",
    "run",
    "fix",
    "check",
    "build",
    "docs",
    "lint",
    "patch",
    "prove",
    "lean",
    "remember",
    "recall",
    "memory",
    "result",
    "answer",
    "reply",
    "talk",
    "user",
    "wants",
    "goal",
    "step",
    "use",
    "hits",
    "line",
    "path",
    "pattern",
    "text",
    "eval",
    "train",
    "model",
    "and",
    "the",
    "of",
    "in",
    "with",
    "done",
)


def _char_name(b: int) -> str:
    return chr(b) if 0x20 <= b <= 0x7E else f"<0x{b:02X}>"


_NAMES = (
    _SPECIALS
    + _STRUCTURAL
    + tuple(f"ARG:{a}" for a in labels.ARG_NAMES)
    + labels.TOOLS
    + tuple(f"S{k}" for k in range(1, labels.MAX_STEPS + 1))
    + tuple(f"N{n}" for n in range(1, NUM_PICKS + 1))
    + tuple(_char_name(b) for b in range(256))
    + WORDS
    + tuple(f"C{k}" for k in range(1, clauses.MAX_CLAUSES + 1))
    + ("CEND",)
)
_IDS = {name: i for i, name in enumerate(_NAMES)}
assert len(_IDS) == len(_NAMES), "plan vocabulary has duplicate token names"

VOCAB_SIZE = len(_NAMES)


def token_id(name: str) -> int:
    """Id of the token called `name`."""
    try:
        return _IDS[name]
    except KeyError:
        raise ValueError(f"unknown plan token {name!r}") from None


def token_name(i: int) -> str:
    """Display name of token id `i` (printable ASCII chars as themselves)."""
    if not 0 <= i < VOCAB_SIZE:
        raise ValueError(f"plan token id {i} outside [0, {VOCAB_SIZE})")
    return _NAMES[i]


PAD, BOS, EOS = (token_id(n) for n in _SPECIALS)
STEP, EOP, THINK, ENDTHINK, FROM, PICK, QUOTE, ENDQUOTE = (token_id(n) for n in _STRUCTURAL)
ARG_IDS = {a: token_id(f"ARG:{a}") for a in labels.ARG_NAMES}
TOOL_IDS = tuple(token_id(t) for t in labels.TOOLS)
STEP_REF_IDS = tuple(token_id(f"S{k}") for k in range(1, labels.MAX_STEPS + 1))
PICK_IDS = tuple(token_id(f"N{n}") for n in range(1, NUM_PICKS + 1))
CHAR_OFFSET = token_id(_char_name(0))
WORD_IDS = {w: token_id(w) for w in WORDS}
# Clause markers of the prompt: C<k> before the goal's k-th clause (text/clauses.py), CEND after
# the goal; consecutive ids, CEND last.
CLAUSE_IDS = tuple(token_id(f"C{k}") for k in range(1, clauses.MAX_CLAUSES + 1))
CEND = token_id("CEND")
assert CEND == CLAUSE_IDS[-1] + 1 == CLAUSE_IDS[0] + clauses.MAX_CLAUSES

_TOOL_OF_ID = {i: t for t, i in zip(labels.TOOLS, TOOL_IDS)}
_ARG_OF_ID = {i: a for a, i in ARG_IDS.items()}
_WORD_OF_ID = {i: w for w, i in WORD_IDS.items()}
_CHAR_IDS = range(CHAR_OFFSET, CHAR_OFFSET + 256)


def encode_text(text: str) -> list[int]:
    """Char tokens of the UTF-8 bytes of `text`."""
    return [CHAR_OFFSET + b for b in text.encode("utf-8")]


def encode_prompt(goal: str) -> list[int]:
    """BOS + chars of "Goal\\n", the goal's clauses each after its marker C<k>, CEND, chars of
    "\\nPlan\\n"; plan tokens follow it. The goal's chars are its UTF-8 bytes in order."""
    ids = [BOS] + encode_text("Goal\n")
    for k, clause in enumerate(clauses.cut(goal)):
        ids += [CLAUSE_IDS[k]] + encode_text(clause)
    return ids + [CEND] + encode_text("\nPlan\n")


@functools.cache
def frame_len() -> int:
    """Ids of the prompt of an empty goal: its frame and one clause marker."""
    return len(encode_prompt(""))


def prompt_fits(goal: str, limit: int) -> bool:
    """Whether encode_prompt(goal) holds at most `limit` ids. A prompt is its frame, the goal's
    bytes and at most MAX_CLAUSES markers, so most goals are decided on their length in bytes
    without being encoded (a goal file of 60,000 is checked in a second, not four)."""
    if frame_len() - 1 + clauses.MAX_CLAUSES + len(goal.encode("utf-8")) <= limit:
        return True
    return len(encode_prompt(goal)) <= limit


def visible_goal(goal: str, limit: int) -> str:
    """The goal as the planner sees it: its end, when encode_prompt(goal) would exceed `limit` ids
    (the planner's training examples and its decoding both keep a long goal's end): the longest
    end of its bytes whose prompt fits."""
    if prompt_fits(goal, limit):
        return goal
    if limit <= frame_len():
        return ""
    raw = goal.encode("utf-8")

    def end(drop: int) -> str:
        return raw[drop:].decode("utf-8", errors="ignore")
    lo, hi = 1, len(raw)  # the prompt of end(hi) = "" fits; find the fewest bytes dropped that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if prompt_fits(end(mid), limit):
            hi = mid
        else:
            lo = mid + 1
    while not prompt_fits(end(lo), limit):  # a clause count that is not monotonic in the cut
        lo += 1
    return end(lo)


def _encode_value(value, step: int, arg: str) -> list[int]:
    where = f"step {step} ({arg})"
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{where}: empty text span")
        return [QUOTE] + encode_text(value) + [ENDQUOTE]
    if isinstance(value, dict) and set(value) == {"from", "pick"}:
        k, n = value["from"], value["pick"]
        if not (isinstance(k, int) and 1 <= k < step):
            raise ValueError(f"{where}: reference from={k!r} must be an earlier step in 1..{step - 1}")
        if not (isinstance(n, int) and 1 <= n <= NUM_PICKS):
            raise ValueError(f"{where}: pick={n!r} must be in 1..{NUM_PICKS}")
        return [FROM, STEP_REF_IDS[k - 1], PICK, PICK_IDS[n - 1]]
    raise ValueError(f"{where}: value must be a str span or {{'from': k, 'pick': n}}, got {value!r}")


def encode_plan(steps: Sequence[dict], think: Sequence[str] | None = None) -> list[int]:
    """Plan tokens (no prompt) ending in EOP EOS; steps are {"tool", "args"} dicts."""
    if not steps:
        raise ValueError("plan has no steps")
    if len(steps) > labels.MAX_STEPS:
        raise ValueError(
            f"step {labels.MAX_STEPS + 1}: plan has {len(steps)} steps, at most {labels.MAX_STEPS} allowed"
        )
    ids = []
    if think is not None:
        unknown = [w for w in think if w not in WORD_IDS]
        if unknown:
            raise ValueError(f"think: words {unknown} not in the lexicon")
        ids += [THINK] + [WORD_IDS[w] for w in think] + [ENDTHINK]
    for step, s in enumerate(steps, start=1):
        tool, args = s.get("tool"), s.get("args", {})
        if tool not in labels.TOOLS:
            raise ValueError(f"step {step}: unknown tool {tool!r}")
        allowed = labels.TOOL_ARGS[tool]
        extra = sorted(set(args) - set(allowed))
        if extra:
            raise ValueError(f"step {step}: tool {tool} takes args {allowed}, got {extra}")
        ids += [STEP, TOOL_IDS[labels.TOOLS.index(tool)]]
        for arg in (a for a in allowed if a in args):
            ids += [ARG_IDS[arg]] + _encode_value(args[arg], step, arg)
    return ids + [EOP, EOS]


class _Reader:
    """A cursor over plan ids whose errors name the position and the token."""

    def __init__(self, ids: Sequence[int], pos: int):
        self.ids, self.pos = ids, pos

    def peek(self) -> int | None:
        return self.ids[self.pos] if self.pos < len(self.ids) else None

    def fail(self, expected: str):
        tok = self.peek()
        got = "end of ids" if tok is None else f"token {token_name(tok)!r} ({tok})"
        raise ValueError(f"position {self.pos}: expected {expected}, got {got}")

    def take(self, accept, expected: str) -> int:
        tok = self.peek()
        if tok is None or tok not in accept:
            self.fail(expected)
        self.pos += 1
        return tok


def _decode_value(r: _Reader, step: int):
    if r.take((QUOTE, FROM), "QUOTE or FROM") == QUOTE:
        span = bytearray()
        while r.peek() in _CHAR_IDS:
            span.append(r.peek() - CHAR_OFFSET)
            r.pos += 1
        if not span:
            r.fail("a char")
        r.take((ENDQUOTE,), "char or ENDQUOTE")
        return span.decode("utf-8", errors="replace")
    earlier = f"a step ref S1..S{step - 1}" if step > 1 else "a step ref, but step 1 has no earlier step"
    k = STEP_REF_IDS.index(r.take(STEP_REF_IDS[: step - 1], earlier))
    r.take((PICK,), "PICK")
    n = PICK_IDS.index(r.take(PICK_IDS, f"a pick index N1..N{NUM_PICKS}"))
    return {"from": k + 1, "pick": n + 1}


def decode_plan(ids: Sequence[int]) -> dict:
    """{"steps": [...], "think": [...] | None} from plan ids; the inverse of encode_plan.

    Tokens before the first THINK/STEP (the prompt) are skipped; tokens after EOS
    (padding) are ignored.
    """
    ids = [int(i) for i in ids]
    start = next((p for p, i in enumerate(ids) if i in (THINK, STEP)), len(ids))
    r = _Reader(ids, start)
    think = None
    if r.peek() == THINK:
        r.pos += 1
        think = []
        while r.peek() in _WORD_OF_ID:
            think.append(_WORD_OF_ID[r.take(_WORD_OF_ID, "word")])
        r.take((ENDTHINK,), "a lexicon word or ENDTHINK")
    steps = []
    while r.peek() == STEP or not steps:
        if len(steps) == labels.MAX_STEPS:
            r.fail(f"EOP (at most {labels.MAX_STEPS} steps)")
        r.take((STEP,), "STEP")
        tool = _TOOL_OF_ID[r.take(_TOOL_OF_ID, "a tool")]
        args = {}
        remaining = list(labels.TOOL_ARGS[tool])
        while r.peek() in _ARG_OF_ID:
            arg_ids = [ARG_IDS[a] for a in remaining]
            arg = _ARG_OF_ID[r.take(arg_ids, f"an argument of {tool} in order {remaining}")]
            remaining = remaining[remaining.index(arg) + 1 :]
            args[arg] = _decode_value(r, len(steps) + 1)
        steps.append({"tool": tool, "args": args})
    r.take((EOP,), "STEP, an argument or EOP")
    r.take((EOS,), "EOS")
    return {"steps": steps, "think": think}


def loss_weights(ids: np.ndarray, prompt_len) -> np.ndarray:
    """float32 weights shaped like ids [..., L]: 0 on prompt and PAD, 0.1 on the plan's first
    STEP, 1 else.

    The first STEP is down-weighted because it is frequent and trivially predictable (every
    plan without THINK starts with it). Every later STEP is the decision to go on rather
    than end with EOP, as hard as any token; at 0.1 the planner learned to end multi-step
    plans early.
    """
    ids_xL = np.asarray(ids)
    pos = np.arange(ids_xL.shape[-1])
    in_plan = pos >= np.asarray(prompt_len)[..., None]
    first = pos == np.asarray(prompt_len)[..., None]
    w = np.where((ids_xL == STEP) & first, 0.1, 1.0).astype(np.float32)
    return np.where(in_plan & (ids_xL != PAD), w, 0.0).astype(np.float32)
