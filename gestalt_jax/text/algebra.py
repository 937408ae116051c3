"""What one side of a PROVE_ALGEBRA identity may hold: the text agent/tools/proofs.py parses, and
the plan decoder (infer/plan_fsm.py) lets an `lhs` or `rhs` span copy from the goal."""

from __future__ import annotations

import re

import numpy as np

# Function and constant names a side may use (name -> sympy's name).
FUNCTIONS = {"sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc",
             "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
             "tanh": "tanh", "exp": "exp", "log": "log", "ln": "log", "sqrt": "sqrt", "abs": "Abs"}
CONSTANTS = {"pi": "pi", "E": "E"}
CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-*/^()., \t")
NOT_A_DECIMAL_POINT = r"\.(?![0-9])"  # a side's "." is only ever a decimal point
_CHAR_BYTES = np.isin(np.arange(256), np.frombuffer("".join(sorted(CHARS)).encode("ascii"), np.uint8))
_LETTERS = re.compile(rb"[A-Za-z]+")
_LOOSE_DOT = re.compile(NOT_A_DECIMAL_POINT.encode())
_NAMES = frozenset(n.encode("ascii") for n in (*FUNCTIONS, *CONSTANTS))


def side_positions(raw: bytes) -> np.ndarray:
    """bool [len(raw)]: the bytes of `raw` a side may copy. A side is written in CHARS, "." only
    as a decimal point, its variables one letter each ("x", "x1"; products with "*") and its
    longer names functions or constants: the words around a side ("and", "equals", "identical")
    are not part of it. No side of the 8,828 in the built-in goal files holds a longer name or "="."""
    ok = _CHAR_BYTES[np.frombuffer(raw, np.uint8)].copy()
    for m in _LOOSE_DOT.finditer(raw):
        ok[m.start()] = False
    for m in _LETTERS.finditer(raw):
        if len(m.group()) > 1 and m.group() not in _NAMES:
            ok[m.start() : m.end()] = False
    return ok
