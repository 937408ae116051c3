"""Mask validators run on a few pipeline batches before a phase (before PAD-denoising).

A wrong loss mask trains silently on nothing, or on padding, or on the planner's prompt;
these checks stop the run with the check's name, the batch row and what was found.
"""

from __future__ import annotations

import numpy as np

from gestalt_jax.data.examples import DataError
from gestalt_jax.model.policy import ARG_CHANNELS, ARG_KINDS, ARGS_PER_SLOT
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels, plan_vocab

KINDS = ("brain", "planner", "policy")
_PLAN_CHARS = (plan_vocab.CHAR_OFFSET, plan_vocab.CHAR_OFFSET + 256)
_PROMPT_END = plan_vocab.encode_text("\nPlan\n")


def _fail(kind: str, check: str, bad_B: np.ndarray, found) -> None:
    """Raise for the first row where `bad_B` (or a [B, ...] mask) holds; `found` is a str or a
    function of that row's flattened mask saying what was found there."""
    bad_Bx = np.asarray(bad_B).reshape(len(bad_B), -1)
    rows = np.flatnonzero(bad_Bx.any(axis=1))
    if len(rows):
        b = int(rows[0])
        what = found if isinstance(found, str) else found(b, bad_Bx[b])
        raise DataError(f"{kind} mask check '{check}' failed at batch row {b} "
                        f"({len(rows)} row(s) in all): {what}")


def _weights(kind: str, w_BxT: np.ndarray) -> float:
    """Trained share; weights must be finite and >= 0 and some position must be trained."""
    _fail(kind, "weights finite and >= 0", ~np.isfinite(w_BxT) | (w_BxT < 0),
          "a negative or non-finite weight")
    share = float(np.mean(w_BxT > 0))
    if not 0 < share <= 1:
        raise DataError(f"{kind} mask check 'trained share' failed: {share:.3f} of positions are trained, "
                        f"expected a share in (0, 1]")
    return share


def _brain(batch: dict) -> dict:
    enc, dec_in, tgt, w = (np.asarray(batch[k]) for k in ("enc", "dec_in", "dec_tgt", "dec_w"))
    trained = w > 0
    share = _weights("brain", w)
    _fail("brain", "encoder input not empty", np.all(enc == byte_tok.PAD, axis=1), "the prompt is all PAD")
    _fail("brain", "decoder input starts with BOS", dec_in[:, 0] != byte_tok.BOS,
          "dec_in[0] is not BOS")
    _fail("brain", "no trained PAD target", trained & (tgt == byte_tok.PAD),
          "a position with dec_tgt = PAD has dec_w > 0")
    # Past the sequence end the decoder input is PAD; a trained target there learns from nothing.
    L = dec_in.shape[1]
    last_B = L - 1 - np.argmax((dec_in != byte_tok.PAD)[:, ::-1], axis=1)
    beyond_BxL = np.arange(L) > last_B[:, None]
    _fail("brain", "no trained target beyond the sequence end", trained & beyond_BxL,
          "dec_w > 0 where dec_in is PAD after the last token")
    return dict(trained_share=share, enc_len=float(np.mean(np.sum(enc != byte_tok.PAD, axis=1))),
                dec_len=float(np.mean(np.sum(tgt != byte_tok.PAD, axis=1))))


def _planner(batch: dict) -> dict:
    tgt, w = np.asarray(batch["targets"]), np.asarray(batch["weights"])
    trained = w > 0
    share = _weights("planner", w)
    _fail("planner", "no trained PAD target", trained & (tgt == plan_vocab.PAD),
          "a position with target PAD has weight > 0")
    # The prompt is BOS + chars of "Goal\n<goal>\nPlan\n": its targets are the chars before
    # the first non-char token (STEP or THINK, or PAD when truncation cut the plan off).
    is_char = (tgt >= _PLAN_CHARS[0]) & (tgt < _PLAN_CHARS[1])
    prompt_len_B = np.where(is_char.all(axis=1), tgt.shape[1], np.argmax(~is_char, axis=1))
    in_prompt = np.arange(tgt.shape[1]) < prompt_len_B[:, None]
    _fail("planner", "no trained prompt position", trained & in_prompt,
          "weight > 0 on a prompt position (before the end of '\\nPlan\\n')")
    k = len(_PROMPT_END)
    starts_plan = np.isin(tgt[np.arange(len(tgt)), np.minimum(prompt_len_B, tgt.shape[1] - 1)],
                          (plan_vocab.STEP, plan_vocab.THINK))
    ends_ok = np.array([list(row[max(0, n - k): n]) == _PROMPT_END for row, n in zip(tgt, prompt_len_B)])
    _fail("planner", "prompt ends in '\\nPlan\\n'", starts_plan & ~ends_ok,
          "the plan starts after a prompt that does not end in '\\nPlan\\n'")
    # Rows with no trained position at all are eval padding, whose weights are zeroed on purpose.
    step = ~in_prompt & (tgt == plan_vocab.STEP) & trained.any(axis=1, keepdims=True)
    first = np.arange(tgt.shape[1]) == prompt_len_B[:, None]
    _fail("planner", "the first STEP target weighs 0.1, later ones 1", step & ~np.isclose(w, np.where(first, 0.1, 1.0)),
          "a STEP target weighted other than 0.1 (the plan's first token) or 1 (a later step)")
    plan_len = np.sum(~in_prompt & (tgt != plan_vocab.PAD), axis=1)
    return dict(trained_share=share, prompt_len=float(np.mean(prompt_len_B)),
                plan_len=float(np.mean(plan_len)))


def _policy(batch: dict) -> dict:
    ids, w = np.asarray(batch["ids"]), np.asarray(batch["example_w"])
    B, L = ids.shape
    share = _weights("policy", w)
    _fail("policy", "goal not empty", np.all(ids == byte_tok.PAD, axis=1), "the goal is all PAD")
    ranges = dict(intent=len(labels.INTENTS), actions=len(labels.ACTIONS), arg_kind=len(ARG_KINDS),
                  span_start=L, span_end=L, from_step=labels.NUM_SLOTS, pick=plan_vocab.NUM_PICKS)
    for key, n in ranges.items():
        v_Bx = np.asarray(batch[key]).reshape(B, -1)
        _fail("policy", f"{key} within its class range", (v_Bx < 0) | (v_Bx >= n),
              lambda b, bad, v_Bx=v_Bx, key=key, n=n: f"{key} = {v_Bx[b][bad][0]} outside [0, {n})")
    acts = np.asarray(batch["actions"])
    after_end = np.cumsum(acts == 0, axis=1) > 0
    _fail("policy", "no action after END", after_end & (acts != 0), "a tool in a slot after END")
    kind = np.asarray(batch["arg_kind"])
    span = kind == ARG_KINDS.index("span")
    start, end = np.asarray(batch["span_start"]), np.asarray(batch["span_end"])
    on_pad = ((np.take_along_axis(ids, start, 1) == byte_tok.PAD)
              | (np.take_along_axis(ids, end, 1) == byte_tok.PAD))
    _fail("policy", "no span target on PAD", span & (on_pad | (start > end)),
          "a span whose start/end lies on PAD or ends before it starts")
    slot_C = np.arange(ARG_CHANNELS) // ARGS_PER_SLOT
    ref = kind == ARG_KINDS.index("from")
    _fail("policy", "references point to earlier steps", ref & (np.asarray(batch["from_step"]) >= slot_C),
          "a from_step that is not an earlier slot")
    return dict(trained_share=share, goal_len=float(np.mean(np.sum(ids != byte_tok.PAD, axis=1))),
                actions=float(np.mean(np.sum(acts != 0, axis=1))), arg_share=float(np.mean(kind != 0)))


def validate(kind: str, batch: dict) -> dict[str, float]:
    """Check one batch's loss masks; DataError naming the check and the row, else stats."""
    checks = dict(brain=_brain, planner=_planner, policy=_policy)
    if kind not in checks:
        raise ValueError(f"unknown batch kind {kind!r}; expected one of {KINDS}")
    return checks[kind](batch)


def summary(kind: str, stats: dict[str, float]) -> str:
    """One console line, e.g. "brain masks ok: trained_share=0.41 enc_len=32.5 dec_len=61.0"."""
    return f"{kind} masks ok: " + " ".join(f"{k}={v:.3g}" for k, v in stats.items())
