"""Grammar-constrained greedy plan decoding: every decoded plan parses with decode_plan.

The plan grammar of `plan_vocab.decode_plan` is compiled once, in numpy, into a finite-state
machine over plan tokens: `LEGAL[state, token]` [S, V] and `NEXT_STATE[state, token]` [S, V]
(-1 where illegal), with `START` before the first plan token and `DONE` after EOS (only PAD
is legal there, and it stays DONE). A state is (step number, the tool's arguments still
allowed, where inside a value we are); that is all the grammar's constraints depend on.
"""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gestalt_jax.text import algebra, labels
from gestalt_jax.text import plan_vocab as pv

_CHARS = tuple(range(pv.CHAR_OFFSET, pv.CHAR_OFFSET + 256))
_WORDS = tuple(pv.WORD_IDS.values())


# Arguments whose value and quote are states of their own, named with a prefix (see IN_PATH, IN_SIDE).
_VALUE_KIND = dict(path="path_value", lhs="side_value", rhs="side_value")
_PREFIXES = ("path_", "side_")


def _prefix(kind: str) -> str:
    return next((p for p in _PREFIXES if kind.startswith(p)), "")


def _transitions(key: tuple) -> dict[int, tuple]:
    """Legal token -> next state key, for the state called `key`."""
    kind, *rest = key
    if kind == "start":
        return {pv.THINK: ("think",), pv.STEP: ("tool", 1)}
    if kind == "think":  # decode_plan accepts an empty THINK ENDTHINK
        return {w: ("think",) for w in _WORDS} | {pv.ENDTHINK: ("first_step",)}
    if kind == "first_step":
        return {pv.STEP: ("tool", 1)}
    if kind == "eop":
        return {pv.EOS: ("done",)}
    if kind == "done":
        return {pv.PAD: ("done",)}
    s, *rem = rest
    if kind == "tool":
        return {tid: ("args", s, labels.TOOL_ARGS[t]) for t, tid in zip(labels.TOOLS, pv.TOOL_IDS)}
    (rem,) = rem  # the arguments still allowed, in TOOL_ARGS order
    if kind == "args":
        out = {pv.ARG_IDS[a]: (_VALUE_KIND.get(a, "value"), s, rem[i + 1 :]) for i, a in enumerate(rem)}
        if s < labels.MAX_STEPS:
            out[pv.STEP] = ("tool", s + 1)
        return out | {pv.EOP: ("eop",)}
    prefix = _prefix(kind)
    kind = kind.removeprefix(prefix)
    if kind == "value":  # step 1 has no earlier step to reference
        return {pv.QUOTE: (prefix + "quote0", s, rem)} | ({pv.FROM: ("ref", s, rem)} if s > 1 else {})
    if kind == "quote0":  # a span has at least one char
        return {c: (prefix + "quote", s, rem) for c in _CHARS}
    if kind == "quote":
        return {c: (prefix + "quote", s, rem) for c in _CHARS} | {pv.ENDQUOTE: ("args", s, rem)}
    if kind == "ref":
        return {r: ("pick", s, rem) for r in pv.STEP_REF_IDS[: s - 1]}
    if kind == "pick":
        return {pv.PICK: ("n", s, rem)}
    if kind == "n":
        return {n: ("args", s, rem) for n in pv.PICK_IDS}
    raise AssertionError(f"unknown FSM state {key!r}")


def _build() -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """State keys (START first), LEGAL [S, V] bool and NEXT_STATE [S, V] int32, by BFS from START."""
    keys, ids, edges = [("start",)], {("start",): 0}, []
    for key in keys:  # keys grows while we walk it: a BFS
        for tok, nxt in _transitions(key).items():
            if nxt not in ids:
                ids[nxt] = len(keys)
                keys.append(nxt)
            edges.append((ids[key], tok, ids[nxt]))
    next_SxV = np.full((len(keys), pv.VOCAB_SIZE), -1, np.int32)
    for s, tok, n in edges:
        next_SxV[s, tok] = n
    return keys, next_SxV >= 0, next_SxV


def _dist_to_done(legal_SxV: np.ndarray, next_SxV: np.ndarray, done: int) -> np.ndarray:
    """Fewest tokens from each state to DONE [S] (Bellman-Ford with unit edges)."""
    inf = np.iinfo(np.int32).max // 2
    dist_S = np.full(len(legal_SxV), inf, np.int32)
    dist_S[done] = 0
    while True:
        via_SxV = np.where(legal_SxV, dist_S[np.maximum(next_SxV, 0)] + 1, inf)
        new_S = np.minimum(dist_S, via_SxV.min(axis=1))
        if (new_S == dist_S).all():
            return dist_S
        dist_S = new_S


STATE_KEYS, LEGAL, NEXT_STATE = _build()
NUM_STATES = len(STATE_KEYS)
START = 0
DONE = STATE_KEYS.index(("done",))
DIST = _dist_to_done(LEGAL, NEXT_STATE, DONE)
assert (DIST < NUM_STATES).all(), "some FSM state cannot reach DONE"
# Tokens a state may emit when `r` tokens are left (this one included): COST[s, t] <= r - 1.
_COST = np.where(LEGAL, DIST[np.maximum(NEXT_STATE, 0)], np.iinfo(np.int32).max).astype(np.int32)
MIN_NEW = int(DIST[START])  # STEP TALK EOP EOS


def state_name(state: int) -> str:
    """Readable name of a state id, e.g. "args(step=2, rem=('rhs',))"."""
    kind, *rest = STATE_KEYS[state]
    fields = [f"step={rest[0]}"] if rest else []
    return f"{kind}({', '.join(fields + [f'rem={r}' for r in rest[1:]])})"


LogitsFn = Callable[[object, jax.Array, jax.Array], tuple[object, jax.Array]]

# States inside a quoted span, where char tokens may be limited to substrings of the goal.
IN_QUOTE = np.array([k[0].removeprefix(_prefix(k[0])) in ("quote0", "quote") for k in STATE_KEYS])
# A path is one word of the goal: none of the built-in goals' paths (12,563 in train.jsonl,
# synthetic.jsonl and held_out.jsonl) holds white space, and a path span that runs on past its word
# joins the next request to it ("pkg/storage then display"). Inside a path's quote, white space is
# no longer a legal char unless the goal has nothing else to start the path with (white space alone).
IN_PATH = IN_QUOTE & np.array([_prefix(k[0]) == "path_" for k in STATE_KEYS])
# A side of an identity (PROVE_ALGEBRA's lhs and rhs) copies only what the tool can parse
# (text/algebra.side_positions): "h^2-k^2 and (h-k)*(h+k)" is two sides, not one.
IN_SIDE = IN_QUOTE & np.array([_prefix(k[0]) == "side_" for k in STATE_KEYS])
AT_QUOTE_START = np.array([k[0].removeprefix(_prefix(k[0])) == "quote0" for k in STATE_KEYS])
# The step a "tool" state picks the tool of, or an "args" state (which may end the plan or
# start the next step) belongs to; 0 for every other state. For the per-row step guidance.
TOOL_STEP = np.array([k[1] if k[0] == "tool" else 0 for k in STATE_KEYS], np.int32)
ARGS_STEP = np.array([k[1] if k[0] == "args" else 0 for k in STATE_KEYS], np.int32)
_TOOL_IDS = np.array(pv.TOOL_IDS, np.int32)
# Tools that take no argument: none of them runs twice in a row in any plan of the built-in goal
# files (train.jsonl, synthetic.jsonl and held_out.jsonl: 60,937 goals), where a tool that takes
# one does 3,003 times (two files read one after the other).
_NO_ARGS = np.array([not labels.TOOL_ARGS[t] for t in labels.TOOLS])
# The states after PICK, where the pick's number comes next; the picks a goal may pin (two a step).
IS_PICK_N = np.array([k[0] == "n" for k in STATE_KEYS])
MAX_PINNED_PICKS = 2 * labels.MAX_STEPS
_PICK_IDS = np.array(pv.PICK_IDS, np.int32)


def _slot_tools(state_B, tools_BxK, skipped_B):
    """The guided tool (index into TOOLS, -1: the planner's) of the slot a tool state fills, and of
    the slot after it; a row that has skipped n open slots fills slot k + n at its k-th step."""
    K = tools_BxK.shape[1]
    slot_B = jnp.asarray(TOOL_STEP)[state_B] - 1 + skipped_B
    at = lambda i_B: jnp.where(i_B < K, jnp.take_along_axis(tools_BxK, jnp.clip(i_B, 0, K - 1)[:, None], axis=1)[:, 0],
                               -1)
    return at(slot_B), at(slot_B + 1)


def _skips(state_B, tok_B, want_B, next_B):
    """Whether the tool just chosen skips an open slot: at an open slot (want_B < 0, a clause the
    policy left to the planner) the tool of the next slot (next_B, `_slot_tools`) when that tool
    takes no argument. Such a tool never runs twice in a row in a built-in plan, so the open clause
    gave no step of its own ("CI is red since this morning. Run the tests and fix whatever fails.":
    RUN_TESTS, FIX_TESTS)."""
    return ((jnp.asarray(TOOL_STEP)[state_B] >= 1) & (want_B < 0) & (next_B >= 0)
            & jnp.asarray(_NO_ARGS)[jnp.maximum(next_B, 0)] & (tok_B == jnp.asarray(_TOOL_IDS)[jnp.maximum(next_B, 0)]))


def _guide(ok_BxV, state_B, want_B, min_steps_B, max_steps_B, picks_BxJ, n_picks_B):
    """ok_BxV narrowed by the rows' guidance: a tool state's tool is TOOLS[want_B] (where >= 0: the
    tool of the slot it fills, `_slot_tools`), EOP only after min_steps_B steps, STEP only before
    max_steps_B (both less the open slots the row has skipped), and the plan's j-th pick (n_picks_B
    = j + 1 PICK tokens so far) is picks_BxJ[:, j] (where >= 1). A row whose guidance leaves no legal
    token (its budget runs out) keeps the grammar's choices, so the plan still parses."""
    tool_s_B, args_s_B = jnp.asarray(TOOL_STEP)[state_B], jnp.asarray(ARGS_STEP)[state_B]
    tool_B = jnp.asarray(_TOOL_IDS)[jnp.maximum(want_B, 0)]
    pin_B = (tool_s_B >= 1) & (want_B >= 0)  # a tool state holds only tool tokens
    guided_BxV = jnp.where(pin_B[:, None], ok_BxV & (jnp.arange(ok_BxV.shape[1]) == tool_B[:, None]), ok_BxV)
    in_args_B = args_s_B > 0
    guided_BxV = guided_BxV.at[:, pv.EOP].set(guided_BxV[:, pv.EOP] & ~(in_args_B & (args_s_B < min_steps_B)))
    guided_BxV = guided_BxV.at[:, pv.STEP].set(guided_BxV[:, pv.STEP] & ~(in_args_B & (args_s_B >= max_steps_B)))
    j_B = jnp.clip(n_picks_B - 1, 0, picks_BxJ.shape[1] - 1)
    pick_B = jnp.take_along_axis(picks_BxJ, j_B[:, None], axis=1)[:, 0]
    pin_B = jnp.asarray(IS_PICK_N)[state_B] & (n_picks_B >= 1) & (n_picks_B <= picks_BxJ.shape[1]) & (pick_B >= 1)
    pick_tok_B = jnp.asarray(_PICK_IDS)[jnp.clip(pick_B - 1, 0, len(_PICK_IDS) - 1)]
    guided_BxV = jnp.where(pin_B[:, None], guided_BxV & (jnp.arange(ok_BxV.shape[1]) == pick_tok_B[:, None]),
                           guided_BxV)
    return jnp.where(jnp.any(guided_BxV, axis=-1, keepdims=True), guided_BxV, ok_BxV)


def goal_bytes(goals: Sequence[str]) -> np.ndarray:
    """UTF-8 bytes of each goal, right-padded with -1 [B, G]: the spans a plan may quote."""
    raw = [g.encode("utf-8") for g in goals]
    out = np.full((len(raw), max(1, max(map(len, raw)))), -1, np.int32)
    for b, r in enumerate(raw):
        out[b, : len(r)] = list(r)
    return out


def side_positions(goal_BxG: np.ndarray) -> np.ndarray:
    """bool [B, G]: the goal bytes (goal_bytes) an identity's side may copy (text/algebra.py)."""
    out = np.zeros(goal_BxG.shape, bool)
    for b, row in enumerate(np.asarray(goal_BxG)):
        raw = bytes(int(x) for x in row[row >= 0])
        out[b, : len(raw)] = algebra.side_positions(raw)
    return out


def _span_chars(goal_BxG, match_BxG):
    """Which bytes may extend the quoted span [B, 256]: goal[j] for every j the span can continue at.

    A goal with no bytes constrains nothing (every decode step needs a legal token).
    """
    onehot_BxGx256 = jax.nn.one_hot(goal_BxG, 256, dtype=jnp.bool_)  # -1 (padding) is all False
    ok_Bx256 = jnp.any(onehot_BxGx256 & match_BxG[..., None], axis=1)
    return ok_Bx256 | ~jnp.any(goal_BxG >= 0, axis=1, keepdims=True)


# Bytes a word is made of: ASCII letters, digits, "_", and every byte of a multi-byte UTF-8 character.
_WORD_BYTE = np.zeros(257, bool)  # index 256: no byte (before the goal's start)
_WORD_BYTE[[ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = True
_WORD_BYTE[0x80:0x100] = True
_SPACE_BYTES = np.array([ord(c) for c in " \t\n\r\v\f"], np.int32)
_IS_SPACE_256 = np.isin(np.arange(256), _SPACE_BYTES)  # a path's chars: IN_PATH
# Words no argument starts with: they join requests ("Hunt for both X and Y", "at 9:30, and the wiki ...").
JOINERS = ("and", "both", "then", "also", "plus")
_QUOTE_BYTES = np.array([ord(c) for c in "'\"`"], np.int32)


def _shifted(x_BxG, k: int):
    """x_BxG[:, j + k] at j (k > 0: the bytes after; k < 0: before), -1 past either end."""
    G = x_BxG.shape[1]
    if k >= 0:
        return jnp.pad(x_BxG, ((0, 0), (0, k)), constant_values=-1)[:, k: k + G]
    return jnp.pad(x_BxG, ((0, 0), (-k, 0)), constant_values=-1)[:, :G]


def _joiner_at(goal_BxG, is_word):
    """Where a JOINERS word starts [B, G], in any case, as a whole word."""
    lower_BxG = jnp.where((goal_BxG >= ord("A")) & (goal_BxG <= ord("Z")), goal_BxG + 32, goal_BxG)
    out_BxG = jnp.zeros(goal_BxG.shape, bool)
    for word in JOINERS:
        hit_BxG = ~is_word(_shifted(goal_BxG, len(word)))
        for k, ch in enumerate(word.encode()):
            hit_BxG &= _shifted(lower_BxG, k) == ch
        out_BxG |= hit_BxG
    return out_BxG


def span_starts(goal_BxG):
    """Where a quoted span may start [B, G]: a byte that is not white space and does not continue
    a word (the byte before it is no word byte, or is an apostrophe inside a word: "s laptop" is
    not a span of "Eve's laptop"), and that does not start a joining word (JOINERS, unless right
    after a quote mark: "search for 'and'"). Every labelled argument of the three goal files
    (36,009) starts at such a byte; a span that starts inside a word or a UTF-8 character is a
    decoding error, and one that starts with "both" or "and" joins two requests into one span.
    A goal with no such byte (white space alone) may start a span anywhere."""
    word_V = jnp.asarray(_WORD_BYTE)
    prev_BxG, prev2_BxG = _shifted(goal_BxG, -1), _shifted(goal_BxG, -2)
    is_word = lambda b: word_V[jnp.where(b >= 0, b, 256)]
    in_word_BxG = is_word(prev_BxG) | ((prev_BxG == ord("'")) & is_word(prev2_BxG))
    space_BxG = jnp.any(goal_BxG[..., None] == jnp.asarray(_SPACE_BYTES), axis=-1)
    quoted_BxG = jnp.any(prev_BxG[..., None] == jnp.asarray(_QUOTE_BYTES), axis=-1)
    joiner_BxG = _joiner_at(goal_BxG, is_word) & ~quoted_BxG
    starts_BxG = (goal_BxG >= 0) & ~space_BxG & ~in_word_BxG & ~joiner_BxG
    # A goal of white space alone: any byte (a quote needs one to start at).
    return jnp.where(jnp.any(starts_BxG, axis=1, keepdims=True), starts_BxG, goal_BxG >= 0)


def _advance_match(goal_BxG, starts_BxG, match_BxG, tok_B, state_B):
    """Where a span can continue after tok_B: every span start of the goal after QUOTE
    (`starts_BxG`, from `span_starts`); after a char c, the position after each match whose byte is
    c. Positions past the goal's end drop out."""
    c_B = tok_B - pv.CHAR_OFFSET
    hit_BxG = match_BxG & (goal_BxG == c_B[:, None])
    shifted_BxG = jnp.pad(hit_BxG[:, :-1], ((0, 0), (1, 0)))
    in_quote_B = jnp.asarray(IN_QUOTE)[state_B]
    match_BxG = jnp.where(in_quote_B[:, None], shifted_BxG, match_BxG)
    return jnp.where((tok_B == pv.QUOTE)[:, None], starts_BxG, match_BxG)


@functools.partial(jax.jit, static_argnames=("logits_fn", "max_new"))
def constrained_greedy(logits_fn: LogitsFn, carry, last_B: jax.Array, max_new: int,
                       goal_BxG: jax.Array | None = None, budget_B: jax.Array | None = None,
                       guide: tuple | None = None, sides_BxG: jax.Array | None = None) -> jax.Array:
    """Greedy plan ids [B, max_new] that always parse: EOP EOS within max_new (within
    `budget_B` <= max_new tokens for each row, when given), PAD after. One compiled
    while-loop, which ends when every row has emitted EOS.

    `logits_fn(carry, token_B, t) -> (carry, logits_BxV)` feeds token_B (at t=0 `last_B`,
    normally the prompt's last token; afterwards the token decoded at t-1) and returns the
    logits of plan token t. The caller puts the prompt in `carry` beforehand: a KV-cache
    planner prefills its cache, a full-recompute one keeps the token buffer and writes
    token_B at the prompt length + t - 1. logits_fn is static (hashed by identity), so
    pass the same function object to reuse the compiled loop.

    Any max_new >= MIN_NEW (= 4, "STEP TALK EOP EOS") works: a token is allowed only if
    DONE is still reachable from its next state within the tokens left after it.

    With `goal_BxG` (`goal_bytes`), every quoted span is a substring of its row's goal that
    starts at a `span_starts` byte: inside a quote only bytes that continue some such occurrence
    are legal. ENDQUOTE stays legal after any char, so the budget argument above still holds.
    A finished span takes its first occurrence in the goal, and no later span of the plan starts
    inside it (unless nothing else may start one): a plan's arguments are different parts of the
    request, and no plan of the built-in goal files with two spans or more (6,082) has one start
    inside an earlier one ("tox.ini" for the third file of "Open setup.cfg, tox.ini and noxfile.py").
    With `sides_BxG` (`side_positions`), a side of an identity copies only what a side may hold.

    With `guide = (tools_BxK, min_steps_B, max_steps_B, picks_BxJ)` (int32, `guidance`), a row's
    k-th tool is TOOLS[tools_BxK[b, k - 1]] where that is >= 0, its plan has between
    min_steps_B and max_steps_B steps, as far as its budget allows, and its j-th pick is
    picks_BxJ[b, j - 1] where that is >= 1 (the grammar wins when they conflict, so every plan
    still parses). An open step (-1) before a step whose tool takes no argument is left out when
    the planner gives it that tool (`_skips`): the plan is then a step shorter.
    """
    if max_new < MIN_NEW:
        raise ValueError(f"max_new={max_new}: the shortest plan needs {MIN_NEW} tokens")
    B = last_B.shape[0]
    budget_B = jnp.full((B,), max_new, jnp.int32) if budget_B is None else jnp.asarray(budget_B, jnp.int32)
    cost_SxV, next_SxV = jnp.asarray(_COST), jnp.asarray(NEXT_STATE)
    in_quote_S, in_path_S, at_start_S = jnp.asarray(IN_QUOTE), jnp.asarray(IN_PATH), jnp.asarray(AT_QUOTE_START)
    in_side_S = jnp.asarray(IN_SIDE)
    if goal_BxG is None:
        goal_BxG = jnp.full((B, 1), -1, jnp.int32)
    if sides_BxG is None:
        sides_BxG = jnp.ones(goal_BxG.shape, bool)
    if guide is None:
        guide = guidance([None] * B)
    tools_BxK, min_steps_B, max_steps_B, picks_BxJ = (jnp.asarray(g, jnp.int32) for g in guide)
    starts_BxG = span_starts(goal_BxG)  # the goal is fixed: once, not at every decoded token

    def cond(val):
        t, state_B = val[0], val[3]
        return (t < max_new) & jnp.any(state_B != DONE)  # stop once every row has emitted EOS

    def step(val):
        t, carry, tok_B, state_B, match_BxG, out_BxT, used_BxG, len_B, skipped_B = val
        carry, logits_BxV = logits_fn(carry, tok_B, t)
        ok_BxV = cost_SxV[state_B] <= (budget_B - 1 - t)[:, None]
        # Inside a side of an identity the span goes on only over what a side may hold (as a path
        # over no white space, below: if nothing of the goal may start it, anything may).
        ends_BxG = match_BxG  # where each occurrence of the span so far ends (one past its last byte)
        side_BxG = match_BxG & sides_BxG
        narrow_B = in_side_S[state_B] & (jnp.any(side_BxG, axis=1) | ~at_start_S[state_B])
        match_BxG = jnp.where(narrow_B[:, None], side_BxG, match_BxG)
        chars_Bx256 = _span_chars(goal_BxG, match_BxG) | ~in_quote_S[state_B][:, None]
        word_Bx256 = chars_Bx256 & ~(in_path_S[state_B][:, None] & jnp.asarray(_IS_SPACE_256))
        keep_Bx1 = jnp.any(word_Bx256, axis=-1, keepdims=True) | ~at_start_S[state_B][:, None]
        chars_Bx256 = jnp.where(keep_Bx1, word_Bx256, chars_Bx256)
        ok_BxV = ok_BxV.at[:, pv.CHAR_OFFSET: pv.CHAR_OFFSET + 256].set(
            ok_BxV[:, pv.CHAR_OFFSET: pv.CHAR_OFFSET + 256] & chars_Bx256)
        n_picks_B = jnp.sum(out_BxT == pv.PICK, axis=1)  # PAD where nothing is decoded yet
        want_B, next_B = _slot_tools(state_B, tools_BxK, skipped_B)
        ok_BxV = _guide(ok_BxV, state_B, want_B, min_steps_B - skipped_B, max_steps_B - skipped_B, picks_BxJ,
                        n_picks_B)
        tok_B = jnp.argmax(jnp.where(ok_BxV, logits_BxV.astype(jnp.float32), -jnp.inf), axis=-1)
        tok_B = tok_B.astype(jnp.int32)
        skipped_B = skipped_B + _skips(state_B, tok_B, want_B, next_B)
        # A span ends: its first occurrence in the goal is taken, and no later span starts in it.
        in_quote_B = in_quote_S[state_B]
        ended_B = in_quote_B & (tok_B == pv.ENDQUOTE) & jnp.any(ends_BxG, axis=1)
        end_B = jnp.argmax(ends_BxG, axis=1)  # one past the first occurrence's last byte
        g_G = jnp.arange(goal_BxG.shape[1])
        span_BxG = (g_G[None, :] >= (end_B - len_B)[:, None]) & (g_G[None, :] < end_B[:, None])
        used_BxG = used_BxG | (ended_B[:, None] & span_BxG)
        len_B = jnp.where(in_quote_B, len_B + 1, 0)
        free_BxG = starts_BxG & ~used_BxG
        match_BxG = _advance_match(goal_BxG, jnp.where(jnp.any(free_BxG, axis=1, keepdims=True), free_BxG, starts_BxG),
                                   match_BxG, tok_B, state_B)
        out_BxT = jax.lax.dynamic_update_slice(out_BxT, tok_B[:, None], (0, t))
        return t + 1, carry, tok_B, next_SxV[state_B, tok_B], match_BxG, out_BxT, used_BxG, len_B, skipped_B

    state_B = jnp.full((B,), START, jnp.int32)
    match_BxG = jnp.zeros(goal_BxG.shape, bool)
    out_BxT = jnp.full((B, max_new), pv.PAD, jnp.int32)
    init = (jnp.int32(0), carry, last_B.astype(jnp.int32), state_B, match_BxG, out_BxT,
            jnp.zeros(goal_BxG.shape, bool), jnp.zeros((B,), jnp.int32), jnp.zeros((B,), jnp.int32))
    return jax.lax.while_loop(cond, step, init)[5]


def guidance(intents: Sequence[str | None], steps: Sequence[Sequence[str] | None] | None = None,
             picks: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, ...]:
    """(tools_BxK, min_steps_B, max_steps_B, picks_BxJ) for constrained_greedy, K = MAX_STEPS,
    J = MAX_PINNED_PICKS, from each goal's intent: a tool's intent (CONVERSATION for TALK) is a
    one-step plan of that tool; COMPOSITE, like None, leaves the row to the grammar alone. A goal's
    `steps` (tool names, where not None) fix its plan's tools, one a step (a None step's tool is the
    planner's), and so its length. A
    goal's `picks` (text.ordinals.picks: the numbers it names) pin its plan's picks in order; a
    number past NUM_PICKS, and every pick after it, is left to the planner.

    COMPOSITE does not force a second step: where the policy calls a one-step goal COMPOSITE
    ("Store the fact that build agents run Ubuntu 22.04"), the planner ends the plan after one
    step, and where the goal asks for more, the planner plans them. On seven trained small-tier
    workdirs that left every training goal's plan as it was (but one in one workdir), gained val
    plans in four and lost none (BENCHMARKS.md, History, "issue 19, sixth round")."""
    steps = [None] * len(intents) if steps is None else list(steps)
    tools = np.full((len(intents), labels.MAX_STEPS), -1, np.int32)
    lo, hi = [], []
    for b, (intent, fixed) in enumerate(zip(intents, steps)):
        if fixed:
            if len(fixed) > labels.MAX_STEPS:
                raise ValueError(f"{len(fixed)} steps: a plan has at most {labels.MAX_STEPS}")
            tools[b, : len(fixed)] = [-1 if t is None else labels.index(labels.TOOLS, t) for t in fixed]
            lo.append(len(fixed))
            hi.append(len(fixed))
        elif intent is None or intent == "COMPOSITE":
            lo.append(1)
            hi.append(labels.MAX_STEPS)
        else:
            tools[b, 0] = labels.index(labels.INTENTS, intent)  # intent i < 15 is TOOLS[i]'s
            lo.append(1)
            hi.append(1)
    pinned = np.zeros((len(intents), MAX_PINNED_PICKS), np.int32)
    for b, named in enumerate(picks or []):
        for j, n in enumerate(list(named)[:MAX_PINNED_PICKS]):
            if not 1 <= n <= pv.NUM_PICKS:
                break
            pinned[b, j] = n
    return tools, np.array(lo, np.int32), np.array(hi, np.int32), pinned


def parse(ids: Sequence[int]) -> dict:
    """decode_plan of ids (prompt + plan or plan only), ignoring anything after the first EOS."""
    ids = [int(i) for i in ids]
    end = ids.index(pv.EOS) + 1 if pv.EOS in ids else len(ids)
    return pv.decode_plan(ids[:end])
