"""Label-preserving rewrites of training goals, so planner and policy learn to copy arguments,
and of talk prompts, so the brain's concept of a request does not hang on its exact spelling.

With a few hundred goals, a model can memorise every path and pattern it was shown instead
of learning to copy the span from the goal. Each draw of a training goal may therefore get
new argument values of the same shape (a path stays a path with its extension, an
identifier stays an identifier in some naming style) written into the goal and its labels
alike, and surface noise outside the argument spans: a filler before or after, a changed
first letter, one swapped pair of letters. The result is checked like any labelled goal
and dropped for the original if a rewrite broke it. Randomness comes from the caller's
generator, so the data stream stays a pure function of (seed, step).
"""

from __future__ import annotations

import re

import numpy as np

from gestalt_jax.data import examples

PREFIXES = ("please ", "hey, ", "can you ", "could you ", "ok, ", "quick one: ", "I need you to ", "pls ",
            "so ", "hi! ")
SUFFIXES = (" please", " thanks", "?", "!", " for me", ".", " asap", " thx", " now")
_DIRS = ("src", "lib", "app", "docs", "tests", "pkg", "internal", "cmd", "scripts", "core", "utils", "api",
         "web", "server", "client", "config", "data", "tools", "build", "vendor", "modules", "services")
_WORDS = ("cache", "parser", "token", "router", "engine", "worker", "queue", "index", "loader", "model",
          "client", "session", "config", "handler", "buffer", "schema", "graph", "store", "stream", "user",
          "auth", "retry", "limit", "format", "render", "metrics", "event", "batch", "node", "state")
_EXTS = ("py", "rs", "go", "md", "toml", "json", "yaml", "ts", "js", "c", "h", "txt", "cfg", "sh")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATH = re.compile(r"[\w.\-/]+")


def _word(rng: np.random.Generator) -> str:
    if rng.random() < 0.3:  # made-up words: names the model has never seen
        return "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(3, 9))))
    return str(rng.choice(_WORDS))


def _identifier(rng: np.random.Generator) -> str:
    words = [_word(rng) for _ in range(int(rng.integers(1, 4)))]
    style = int(rng.integers(4))
    if style == 0:
        return "_".join(words)
    if style == 1:
        return words[0] + "".join(w.capitalize() for w in words[1:])
    if style == 2:
        return "".join(w.capitalize() for w in words)
    return "_".join(words).upper()


def _path(old: str, rng: np.random.Generator) -> str:
    """A new path shaped like `old`: same leading ./ or /, same extension (or none), same trailing /."""
    lead = "./" if old.startswith("./") else "/" if old.startswith("/") else ""
    trail = "/" if old.endswith("/") and len(old) > 1 else ""
    name = old.rstrip("/").rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[1] if "." in name.lstrip(".") else ""
    dirs = [str(rng.choice(_DIRS)) if rng.random() < 0.6 else _word(rng) for _ in range(int(rng.integers(0, 4)))]
    leaf = _word(rng) if rng.random() < 0.5 else _identifier(rng).lower()
    if ext:
        ext = ext if rng.random() < 0.7 else str(rng.choice(_EXTS)) if ext in _EXTS else ext
        leaf += "." + ext
    return lead + "/".join(dirs + [leaf]) + trail


def new_value(name: str, old: str, rng: np.random.Generator) -> str | None:
    """A replacement for argument `name`'s value `old` of the same shape, or None to keep it
    (free text: memory notes, algebra, multi-word search phrases)."""
    if name == "path" and _PATH.fullmatch(old):
        return _path(old, rng)
    if name == "pattern" and _IDENTIFIER.fullmatch(old) and len(old) > 2:
        return _identifier(rng)
    return None


def _spans(goal: str, values: list[str]) -> list[tuple[int, int]]:
    """Character ranges of every occurrence of every argument value in the goal."""
    out = []
    for v in values:
        start = goal.find(v)
        while start >= 0:
            out.append((start, start + len(v)))
            start = goal.find(v, start + 1)
    return out


def _free(i: int, spans: list[tuple[int, int]]) -> bool:
    return not any(a <= i < b for a, b in spans)


def _surface(goal: str, values: list[str], rng: np.random.Generator) -> str:
    spans = _spans(goal, values)
    if rng.random() < 0.3:  # swap two adjacent letters outside every argument
        spots = [i for i in range(len(goal) - 1) if goal[i].isalpha() and goal[i + 1].isalpha()
                 and _free(i, spans) and _free(i + 1, spans)]
        if spots:
            i = int(rng.choice(spots))
            goal = goal[:i] + goal[i + 1] + goal[i] + goal[i + 2:]
    case = rng.random()
    if case < 0.15:  # the whole request shouted or typed in lower case; argument spans keep theirs
        change = str.upper if case < 0.05 else str.lower
        goal = "".join(ch if not _free(i, spans) else change(ch) for i, ch in enumerate(goal))
    elif rng.random() < 0.3 and goal and _free(0, spans):
        goal = (goal[0].lower() if goal[0].isupper() else goal[0].upper()) + goal[1:]
    if rng.random() < 0.3:
        goal = str(rng.choice(PREFIXES)) + goal
    if rng.random() < 0.3:
        goal = goal + str(rng.choice(SUFFIXES))
    return goal


def augment(record: dict, rng: np.random.Generator, fits=None) -> dict:
    """A rewritten copy of a labelled goal with the same intent and actions; `record` itself
    when the rewrite would not be a valid labelled goal, or when `fits` (a predicate of the
    rewrite, e.g. that its plan fits the planner's row of trained positions) refuses it."""
    goal = record["goal"]
    args = [dict(a) for a in record.get("args") or []]
    for step_args in args:
        for name, value in step_args.items():
            if not isinstance(value, str) or rng.random() < 0.3:
                continue
            new = new_value(name, value, rng)
            if new is None or new in goal or goal.count(value) != 1:
                continue
            goal = goal.replace(value, new)
            for other in args:  # the same value in another step is the same thing
                for k, v in other.items():
                    if v == value:
                        other[k] = new
    values = [v for a in args for v in a.values() if isinstance(v, str)]
    goal = _surface(goal, values, rng)
    out = dict(record, goal=goal, args=args) if args else dict(record, goal=goal)
    return record if examples.goal_problem(out) or (fits is not None and not fits(out)) else out


def talk_prompt(pair: dict, rng: np.random.Generator) -> dict:
    """A talk pair with the same response and its prompt as a user might type it: a typo, a
    changed case, a filler before or after."""
    return dict(pair, prompt=_surface(pair["prompt"], [], rng))


def sometimes(record: dict, rng: np.random.Generator, p: float, rewrite=augment) -> dict:
    """`rewrite` (a labelled goal's `augment`, or `talk_prompt`) with probability p, else the
    record as written."""
    return rewrite(record, rng) if rng.random() < p else record
