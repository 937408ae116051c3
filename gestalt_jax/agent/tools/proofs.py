"""PROVE_ALGEBRA and LEAN_SUITE: identities checked by a computer algebra system, proofs by Lean.

PROVE_ALGEBRA parses the goal's two sides with sympy's `parse_expr`, which ends in Python's `eval`.
It is only reached by text that cannot be anything but arithmetic (`_check_text`): letters, digits,
spaces and `+-*/^().,` (so no quotes, `_`, `:`, `[`, `=`), `.` only as a decimal point (so no
attribute access), no Python keyword or builtin name, and the names evaluated in a namespace of
sympy's number, symbol and whitelisted function classes with empty `__builtins__`. The parsed tree
is sized before it is evaluated (exponents, digits, the terms expansion would make), so a goal like
`(a+b)^100000` is refused at once instead of expanding for hours.

LEAN_SUITE runs the workspace's own Lean (`lake build`, or `lean FILE` per file) in the sandbox.
"""

from __future__ import annotations

import builtins
import cmath
import functools
import itertools
import keyword
import math
import os
import re
import shutil
import typing
import unicodedata
from pathlib import Path

from gestalt_jax.agent.sandbox import WritesRefused
from gestalt_jax.agent.tools.base import ERROR, FAILED, OK, Context, Item, Result, ToolError
from gestalt_jax.agent.tools.files import walk
from gestalt_jax.text.algebra import CHARS, CONSTANTS, FUNCTIONS, NOT_A_DECIMAL_POINT

MAX_CHARS = 200        # per side
MAX_EXPONENT = 100     # |numerator| and denominator of a numeric exponent
MAX_TERMS = 2000       # terms a subexpression may expand to (multinomial bound)
MAX_BITS = 100_000     # bits of a number raised to a power
COUNTEREXAMPLE_TRIES = 200
_VALUES = (1, 2, -1, 3, 0, -2)  # small integers substituted for the free symbols, in this order
_SYMPY_NAMES = ("Symbol", "Integer", "Float", "Rational", "Number", "Add", "Mul", "Pow")  # parse_expr's output
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_VARIABLES = re.compile(r"[A-Za-z]+|[A-Za-z][0-9]+")  # 2ab: a product of one-letter variables; x1: one
_PYTHON_NAMES = frozenset(keyword.kwlist) | frozenset(vars(builtins))


class _TooBig(Exception):
    """A subexpression over one of the size caps; the message says which."""


def _check_text(side: str, text: str) -> str:
    """`text` with `*` made explicit before parentheses that are not a function call (x(x+1)), or
    ToolError saying why it is not an algebraic expression parse_expr may see."""
    def refuse(why: str) -> typing.NoReturn:
        raise ToolError(f"{side} {text!r}: not an algebraic expression ({why})")

    if len(text) > MAX_CHARS:
        raise ToolError(f"{side} {text[:40]!r}...: longer than {MAX_CHARS} characters; state a smaller identity")
    bad = sorted(set(text) - CHARS)
    if bad:
        refuse(f"{bad[0]!r} is not allowed; use letters, digits, spaces and + - * / ^ ( ) . ,")
    if re.search(NOT_A_DECIMAL_POINT, text):
        refuse("'.' may only be a decimal point")
    for match in _NAME.finditer(text):
        name = match.group()
        if name in FUNCTIONS or name in CONSTANTS:
            continue
        if name in _PYTHON_NAMES:
            refuse(f"{name!r} is Python, not algebra")
        if not _VARIABLES.fullmatch(name):
            refuse(f"{name!r}: variables are one letter (or a letter and digits, x1); write products with *")
    return _NAME.sub(lambda m: m.group() if m.group() in FUNCTIONS or not re.match(r"\s*\(", text[m.end():])
                     else m.group() + "*", text)


def _splittable(name: str) -> bool:
    """parse_expr's split_symbols: `ab` is a*b, but `alpha` and `x1` are one symbol each."""
    try:
        unicodedata.lookup(f"GREEK SMALL LETTER {name}")
        return False
    except KeyError:
        return name.isalpha() and len(name) > 1


@functools.cache
def _parser():
    """(sympy's parser module, our transformations, the only names the parsed code may use),
    built when first needed: sympy takes half a second to import."""
    import sympy
    from sympy.parsing import sympy_parser as sp

    names = {name: getattr(sympy, name) for name in _SYMPY_NAMES}
    names.update({k: getattr(sympy, v) for k, v in (FUNCTIONS | CONSTANTS).items()})
    transformations = sp.standard_transformations + (
        sp.convert_xor, sp.split_symbols_custom(_splittable), sp.implicit_multiplication,
        sp.implicit_application, sp.function_exponentiation)
    return sp, transformations, names


def parse_side(side: str, text: str):
    """One side as a sympy expression, evaluated only once its size is known to be small."""
    import sympy

    code = _check_text(side, text)
    sp, transformations, names = _parser()
    try:
        tree = sp.parse_expr(code, local_dict={}, global_dict=dict(names, __builtins__={}),
                             transformations=transformations, evaluate=False)
    except Exception as e:  # SyntaxError, TokenError, TypeError...: all mean "not an expression"
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise ToolError(f"{side} {text!r}: not an algebraic expression (it does not parse: {reason})") from None
    if not isinstance(tree, sympy.Expr):
        raise ToolError(f"{side} {text!r}: not an algebraic expression (not a single expression)")
    try:
        value = _sized(tree)[0]
    except _TooBig as e:
        raise ToolError(f"{side} {text!r}: too big to prove here ({e})") from None
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise ToolError(f"{side} {text!r}: undefined (it divides by zero or takes log(0))")
    return value


def _sized(tree) -> tuple[typing.Any, int]:
    """(the unevaluated `tree` evaluated bottom-up, a bound on the terms its expansion has),
    refusing (_TooBig) a subexpression before evaluating it when it is over a cap."""
    import sympy

    if not tree.args:
        return tree, 1
    args, terms = zip(*(_sized(a) for a in tree.args))
    if isinstance(tree, sympy.Pow):
        (base, power), (base_terms, power_terms) = args, terms
        if power.is_Number:
            if abs(power) > MAX_EXPONENT or (power.is_Rational and power.q > MAX_EXPONENT):
                raise _TooBig(f"exponent {_brief(power)} is over the cap of {MAX_EXPONENT}")
            if base.is_Rational and power.is_Integer and \
                    (base.p.bit_length() + base.q.bit_length()) * abs(power.p) > MAX_BITS:
                raise _TooBig(f"{_brief(base)}^{power} has more than {MAX_BITS} bits")
            n = math.comb(abs(power.p) + base_terms - 1, base_terms - 1) if power.is_Integer else base_terms
        else:
            n = base_terms if power.is_number else base_terms + power_terms
    elif isinstance(tree, sympy.Add):
        n = sum(terms)
    elif isinstance(tree, sympy.Mul):
        n = math.prod(terms)
    else:
        n = 1
    if n > MAX_TERMS:
        raise _TooBig(f"{_brief(tree)} would expand to more than {MAX_TERMS} terms")
    return tree.func(*args), n


def _brief(expr) -> str:
    text = str(expr)
    return text if len(text) <= 60 else f"{text[:25]}...{text[-25:]}"


def sides(args: dict[str, str]) -> tuple[str, str]:
    """(lhs, rhs) as PROVE_ALGEBRA reads them: both given, or lhs alone as 'A = B'; ToolError otherwise."""
    lhs, rhs = args.get("lhs", "").strip(), args.get("rhs", "").strip()
    if not rhs:
        parts = lhs.replace("==", "=").split("=")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ToolError("PROVE_ALGEBRA needs both sides: lhs and rhs, or lhs as 'A = B'")
        lhs, rhs = parts[0].strip(), parts[1].strip()
    if not lhs:
        raise ToolError("PROVE_ALGEBRA: lhs is empty; give both sides of the identity")
    return lhs, rhs


def _counterexample(lhs, rhs):
    """(values, lhs there, rhs there) at the first small-integer point where the sides differ."""
    symbols = sorted(lhs.free_symbols | rhs.free_symbols, key=str)
    for values in itertools.islice(itertools.product(_VALUES, repeat=len(symbols)), COUNTEREXAMPLE_TRIES):
        at = dict(zip(symbols, values))
        left, right = lhs.xreplace(at), rhs.xreplace(at)
        try:
            gap, scale = complex((left - right).evalf(30)), complex(left.evalf(30))
        except (TypeError, ValueError):  # not a number there (zoo, a leftover symbol)
            continue
        if cmath.isfinite(gap) and cmath.isfinite(scale) and abs(gap) > 1e-9 * max(1.0, abs(scale)):
            return at, left, right
    return None


def prove_algebra(ctx: Context, args: dict[str, str]) -> Result:
    """PROVE_ALGEBRA: ok when lhs - rhs simplifies to 0; failed, with a counterexample, when not."""
    import sympy

    lhs_text, rhs_text = sides(args)
    lhs, rhs = parse_side("lhs", lhs_text), parse_side("rhs", rhs_text)
    goal = f"{lhs_text} = {rhs_text}"
    lhs_x, rhs_x = sympy.expand(lhs), sympy.expand(rhs)
    diff = sympy.expand(lhs - rhs)
    # An expanded nonzero polynomial is not identically zero: simplify is only needed beyond them.
    polynomial = diff.is_polynomial()
    rest = diff if polynomial else sympy.simplify(diff)
    items = [Item(f"lhs expanded: {ctx.excerpt(sympy.sstr(lhs_x))}"),
             Item(f"rhs expanded: {ctx.excerpt(sympy.sstr(rhs_x))}")]
    data = dict(lhs=sympy.sstr(lhs_x), rhs=sympy.sstr(rhs_x), difference=sympy.sstr(rest))
    if rest == 0:
        return Result("PROVE_ALGEBRA", OK, f"proved: {goal} (lhs - rhs simplifies to 0)", items, data=data)
    found = _counterexample(lhs, rhs)
    difference = ctx.excerpt(sympy.sstr(rest))
    if found:
        at, left, right = found
        values = ", ".join(f"{s}={v}" for s, v in at.items())
        example = f"{values + ': ' if values else ''}lhs = {left}, rhs = {right}"
        items.append(Item(f"counterexample: {example}"))
        data["counterexample"] = {str(s): v for s, v in at.items()}
        summary = f"refuted: {goal} (lhs - rhs = {difference}; {example})"
    elif polynomial:
        summary = f"refuted: {goal} (lhs - rhs expands to the nonzero polynomial {difference})"
    else:
        summary = (f"not proved: {goal} (lhs - rhs simplifies to {difference}, and no counterexample "
                   f"among small integers)")
    return Result("PROVE_ALGEBRA", FAILED, summary, items, data=data)


# -- Lean ----------------------------------------------------------------------------------------
LAKEFILES = ("lakefile.lean", "lakefile.toml")
MAX_LEAN_FILES = 50
NOT_INSTALLED = ("Lean is not installed (no `lake` or `lean` on PATH); "
                 "see https://leanprover-community.github.io/get_started.html")
# `lean` prints "F.lean:3:4: error: msg" (newer ones "error(lean.name): msg"); Lake "error: F.lean:3:4: msg".
_LEAN_MESSAGE = re.compile(
    r"^(?:(?P<before>error|warning|info): )?(?P<path>[^\s:][^:\n]*\.lean):(?P<line>\d+):(?P<column>\d+):"
    r"[ \t]*(?:(?P<after>error|warning|info)(?:\([^)\n]*\))?:[ \t]*)?(?P<message>.*)$", re.MULTILINE)


class LeanMessage(typing.NamedTuple):
    path: str
    line: int
    column: int
    severity: str
    message: str


def lean_messages(output: str) -> list[LeanMessage]:
    """The located messages of Lean or Lake output (the first line of each), paths normalized."""
    return [LeanMessage(os.path.normpath(m["path"]), int(m["line"]), int(m["column"]),
                        m["after"] or m["before"] or "error", m["message"].strip())
            for m in _LEAN_MESSAGE.finditer(output)]


def _elan_env(program: str) -> dict[str, str]:
    """elan's `lake`/`lean` proxies find their toolchains through ELAN_HOME (the sandbox's HOME is
    a fresh temporary directory): pass it on."""
    home = os.environ.get("ELAN_HOME") or str(Path(program).parent.parent)
    return {"ELAN_HOME": home} if Path(home, "toolchains").is_dir() else {}


def lean_suite(ctx: Context, args: dict[str, str]) -> Result:
    """LEAN_SUITE: `lake build` for a Lake project, else `lean FILE` per file (at most
    MAX_LEAN_FILES); failed on an error or a `sorry` (a proof with a sorry proves nothing)."""
    sandbox = ctx.sandbox
    files = [rel for rel in walk(sandbox.root) if rel.endswith(".lean") and rel != "lakefile.lean"]
    if not files:
        return Result("LEAN_SUITE", ERROR, "no Lean files in the workspace")
    lake, lean = shutil.which("lake"), shutil.which("lean")
    lake_project = any((sandbox.root / name).is_file() for name in LAKEFILES)
    if lake_project and lake:
        runs = [([lake, "build"], True, _elan_env(lake))]
        command = "lake build"
    elif lean:
        runs = [([lean, rel], False, _elan_env(lean)) for rel in files[:MAX_LEAN_FILES]]
        command = f"lean on {len(runs)}{f' of {len(files)}' if len(files) > len(runs) else ''} file(s)"
    else:
        return Result("LEAN_SUITE", ERROR, NOT_INSTALLED)
    outputs, failed_runs, timed_out = [], 0, []
    for argv, writes, env in runs:
        try:
            done = sandbox.run(argv, writes=writes, env=env)
        except WritesRefused as e:
            raise ToolError(f"{e} (Lake writes its build to .lake/ in the workspace)") from None
        outputs.append(done.output)
        failed_runs += not done.ok
        if done.timed_out:
            timed_out.append(argv[-1])
    output = "\n".join(outputs)
    messages = lean_messages(output)
    errors = [m for m in messages if m.severity == "error"]
    sorries = [m for m in messages if m.severity == "warning" and "sorry" in m.message]
    items = [Item(f"{_rel(sandbox, m.path)}:{m.line}: {m.severity}: {m.message}", _rel(sandbox, m.path), m.line)
             for m in messages if m in errors or m in sorries]
    if timed_out:
        summary = f"{command}: timed out after {ctx.agent.timeout_s:g} s ({', '.join(timed_out)})"
    elif errors or sorries:
        summary = f"{command}: {len(errors)} error(s), {len(sorries)} sorry warning(s)"
    elif failed_runs:
        summary = f"{command}: failed without a located error; see the excerpt"
    else:
        summary = f"{command}: no errors"
    failed = bool(timed_out or errors or sorries or failed_runs)
    return Result("LEAN_SUITE", FAILED if failed else OK, summary, items, ctx.excerpt(output),
                  dict(errors=len(errors), sorries=len(sorries), files=len(files),
                       sandbox_missing=sandbox.missing()))


def _rel(sandbox, path: str) -> str:
    """A message's path as workspace-relative (Lake may print it absolute)."""
    p = Path(path)
    return sandbox.rel(p) if p.is_absolute() and p.is_relative_to(sandbox.root) else p.as_posix()


TOOLS = {"PROVE_ALGEBRA": prove_algebra, "LEAN_SUITE": lean_suite}
