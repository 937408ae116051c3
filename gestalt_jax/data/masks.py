"""Mask validators run on packed batches before a phase (before PAD-denoising): the first
training batches (augmented, as the phase draws them) and the first val batch.

A wrong loss mask trains silently on nothing, or on padding, or on the planner's prompt; a
wrong packing lets one example see another's positions. These checks stop the run with the
check's name, the batch row and what was found.
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


def _weights(kind: str, w: np.ndarray) -> float:
    """Trained share; weights must be finite and >= 0 and some position must be trained."""
    _fail(kind, "weights finite and >= 0", ~np.isfinite(w) | (w < 0), "a negative or non-finite weight")
    share = float(np.mean(w > 0))
    if not 0 < share <= 1:
        raise DataError(f"{kind} mask check 'trained share' failed: {share:.3f} of positions are trained, "
                        f"expected a share in (0, 1]")
    return share


def within(seg_BxL: np.ndarray) -> np.ndarray:
    """[B, L] each position's index inside its packed example (counted from its slot's start)."""
    B, L = seg_BxL.shape
    new_BxL = np.ones((B, L), bool)
    new_BxL[:, 1:] = seg_BxL[:, 1:] != seg_BxL[:, :-1]
    first_BxL = np.maximum.accumulate(np.where(new_BxL, np.arange(L), 0), axis=1)
    return np.arange(L) - first_BxL


def _slots(seg_BxL: np.ndarray, n: int) -> np.ndarray:
    """[B, n] whether each slot 1..n holds a position."""
    return (seg_BxL[:, :, None] == np.arange(1, n + 1)).any(axis=1)


def _packing(kind: str, segs: dict[str, np.ndarray]) -> None:
    """In every group of a packed row, the examples' slots run 1, 2, ... from the row's start, each
    one contiguous, padding (0) only at the end; every group of a row holds the same slots."""
    for name, seg in segs.items():
        real = seg > 0
        _fail(kind, f"{name} padding only at the row's end", real[:, 1:] & ~real[:, :-1],
              f"an example after padding in the {name} row")
        _fail(kind, f"{name} slots 1, 2, ... in order",
              np.concatenate([real[:, :1] & (seg[:, :1] != 1), real[:, 1:] & ~np.isin(np.diff(seg, axis=1), (0, 1))],
                             axis=1), f"{name} slots are not numbered 1, 2, ... from the row's start")
    n = max(int(s.max()) for s in segs.values())
    first = next(iter(segs.values()))
    for name, seg in segs.items():
        _fail(kind, "every sequence of an example in the same slot", _slots(seg, n) != _slots(first, n),
              f"{name} holds other slots than the row's other sequences")


def _brain(batch: dict, n_prefix: int) -> dict:
    enc, dec_in, tgt, w = (np.asarray(batch[k]) for k in ("enc", "dec_in", "dec_tgt", "dec_w"))
    enc_seg, dec_seg = np.asarray(batch["enc_seg"]), np.asarray(batch["dec_seg"])
    trained = w > 0
    share = _weights("brain", w)
    _packing("brain", dict(enc=enc_seg, dec=dec_seg))
    _fail("brain", "padding untrained", trained & (dec_seg == 0), "dec_w > 0 outside every example")
    _fail("brain", "encoder padding is PAD", (enc_seg == 0) & (enc != byte_tok.PAD), "a byte outside every example")
    _fail("brain", "encoder input not PAD", (enc_seg > 0) & (enc == byte_tok.PAD), "PAD inside a prompt")
    pos = within(dec_seg)
    slot_pos = (dec_seg > 0) & (pos < n_prefix)
    _fail("brain", "concept slots untrained", slot_pos & (trained | (dec_in != byte_tok.PAD)),
          f"one of an example's first {n_prefix} decoder positions (its concept prefix) is trained or not PAD")
    _fail("brain", "decoder input starts with BOS", (dec_seg > 0) & (pos == n_prefix) & (dec_in != byte_tok.BOS),
          "an example's first text input is not BOS")
    _fail("brain", "no trained PAD target", trained & (tgt == byte_tok.PAD),
          "a position with dec_tgt = PAD has dec_w > 0")
    n_ex = max(1, int(_slots(dec_seg, int(dec_seg.max())).sum()))
    return dict(trained_share=share, examples=float(n_ex), enc_len=float(np.sum(enc_seg > 0) / n_ex),
                dec_len=float(np.sum(trained) / n_ex),
                filled=float((np.mean(enc_seg > 0) + np.mean(dec_seg > 0)) / 2))


def _planner(batch: dict) -> dict:
    tgt, w, seg = np.asarray(batch["targets"]), np.asarray(batch["weights"]), np.asarray(batch["plan_seg"])
    trained = w > 0
    share = _weights("planner", w)
    _packing("planner", dict(plan=seg))
    _fail("planner", "padding untrained", trained & (seg == 0), "weight > 0 outside every example")
    _fail("planner", "no trained PAD target", trained & (tgt == plan_vocab.PAD),
          "a position with target PAD has weight > 0")
    # Each example's prompt is BOS + chars of "Goal\n<goal>\nPlan\n" with clause markers in the
    # goal: its targets are the chars and markers before the example's first other target (STEP
    # or THINK).
    pos = within(seg)
    not_char = ~((tgt >= _PLAN_CHARS[0]) & (tgt < _PLAN_CHARS[1])) & (seg > 0)
    not_char &= ~((tgt >= plan_vocab.CLAUSE_IDS[0]) & (tgt <= plan_vocab.CEND))  # clause markers are prompt
    B, L = tgt.shape
    n = int(seg.max())
    prompt_end_Bxn = np.full((B, n), L)
    for s in range(1, n + 1):
        hit = not_char & (seg == s)
        prompt_end_Bxn[:, s - 1] = np.where(hit.any(axis=1), np.argmax(hit, axis=1), L)
    end_BxL = np.take_along_axis(prompt_end_Bxn, np.maximum(seg - 1, 0), axis=1)
    in_prompt = (seg > 0) & (np.arange(L) < end_BxL)
    _fail("planner", "no trained prompt position", trained & in_prompt,
          "weight > 0 on a prompt position (before the end of '\\nPlan\\n')")
    k = len(_PROMPT_END)
    starts_plan = (seg > 0) & (np.arange(L) == end_BxL) & np.isin(tgt, (plan_vocab.STEP, plan_vocab.THINK))
    for b, i in zip(*np.nonzero(starts_plan)):
        if list(tgt[b, max(0, i - k): i]) != _PROMPT_END or pos[b, i] < k:
            _fail("planner", "prompt ends in '\\nPlan\\n'", np.arange(B) == b,
                  "a plan starts after a prompt that does not end in '\\nPlan\\n'")
    step = (seg > 0) & ~in_prompt & (tgt == plan_vocab.STEP)
    first = np.arange(L) == end_BxL
    _fail("planner", "the first STEP target weighs 0.1, later ones 1",
          step & ~np.isclose(w, np.where(first, 0.1, 1.0)),
          "a STEP target weighted other than 0.1 (the plan's first token) or 1 (a later step)")
    _trained_row(batch, trained)
    n_ex = max(1, int(_slots(seg, n).sum()))
    return dict(trained_share=share, examples=float(n_ex), prompt_len=float(np.sum(in_prompt) / n_ex),
                plan_len=float(np.sum((seg > 0) & ~in_prompt) / n_ex), filled=float(np.mean(seg > 0)))


def _trained_row(batch: dict, trained_BxL: np.ndarray) -> None:
    """The row of trained positions beside each row (what the loss reads) names every trained
    position of its row once, in order, in its example's slot, with its target and weight."""
    at, seg = np.asarray(batch["trained_at"]), np.asarray(batch["trained_seg"])
    filled = seg > 0
    _fail("planner", "trained positions: one per trained position", filled.sum(1) != trained_BxL.sum(1),
          "the row of trained positions does not hold as many as the row has")
    B, L = trained_BxL.shape
    for b in range(B):
        want = np.flatnonzero(trained_BxL[b])
        got = at[b][filled[b]]
        if not np.array_equal(got, want):
            _fail("planner", "trained positions: each trained position, in order", np.arange(B) == b,
                  f"positions {got[:8].tolist()}... where {want[:8].tolist()}... are trained")
        for name, full in (("trained_targets", "targets"), ("trained_weights", "weights"),
                           ("trained_seg", "plan_seg")):
            if not np.array_equal(np.asarray(batch[name])[b][filled[b]], np.asarray(batch[full])[b][want]):
                _fail("planner", f"trained positions: {name} as {full}", np.arange(B) == b,
                      f"{name} differs from {full} at the trained positions")


def _policy(batch: dict) -> dict:
    ids, w, seg = np.asarray(batch["ids"]), np.asarray(batch["example_w"]), np.asarray(batch["goal_seg"])
    B, L = ids.shape
    n = w.shape[1]
    share = _weights("policy", w)
    _packing("policy", dict(goal=seg))
    _fail("policy", "an example's slot holds its goal", (w > 0) != _slots(seg, n),
          "example_w > 0 on an empty slot, or a goal whose slot weighs 0")
    _fail("policy", "goal bytes inside examples only", (seg == 0) != (ids == byte_tok.PAD),
          "PAD inside a goal, or a byte outside every goal")
    ranges = dict(intent=len(labels.INTENTS), actions=len(labels.ACTIONS), arg_kind=len(ARG_KINDS),
                  span_start=L, span_end=L, from_step=labels.NUM_SLOTS, pick=plan_vocab.NUM_PICKS)
    for key, k in ranges.items():
        v_Bx = np.asarray(batch[key]).reshape(B, -1)
        _fail("policy", f"{key} within its class range", (v_Bx < 0) | (v_Bx >= k),
              lambda b, bad, v_Bx=v_Bx, key=key, k=k: f"{key} = {v_Bx[b][bad][0]} outside [0, {k})")
    acts = np.asarray(batch["actions"])
    after_end = np.cumsum(acts == 0, axis=-1) > 0
    _fail("policy", "no action after END", after_end & (acts != 0), "a tool in a slot after END")
    kind = np.asarray(batch["arg_kind"])
    span = (kind == ARG_KINDS.index("span")) & (w[..., None] > 0)
    start, end = np.asarray(batch["span_start"]), np.asarray(batch["span_end"])
    own = np.arange(1, n + 1)[None, :, None]  # each slot's own number
    seg_at = lambda p: np.take_along_axis(seg, np.clip(p, 0, L - 1).reshape(B, -1), axis=1).reshape(p.shape)
    _fail("policy", "spans inside their own goal", span & ((seg_at(start) != own) | (seg_at(end) != own)
                                                           | (start > end)),
          "a span whose start/end lies outside its example's goal or ends before it starts")
    slot_C = np.arange(ARG_CHANNELS) // ARGS_PER_SLOT
    ref = (kind == ARG_KINDS.index("from")) & (w[..., None] > 0)
    _fail("policy", "references point to earlier steps", ref & (np.asarray(batch["from_step"]) >= slot_C),
          "a from_step that is not an earlier slot")
    real = w > 0
    n_ex = max(1, int(real.sum()))
    return dict(trained_share=share, examples=float(n_ex), goal_len=float(np.sum(seg > 0) / n_ex),
                actions=float(np.sum((acts != 0) & real[..., None]) / n_ex),
                arg_share=float(np.mean(kind[real] != 0)) if real.any() else 0.0, filled=float(np.mean(seg > 0)))


def validate(kind: str, batch: dict, n_prefix: int = 0) -> dict[str, float]:
    """Check one packed batch's loss masks and packing (`n_prefix`: the brain's concept slots);
    DataError naming the check and the row, else stats."""
    if kind == "brain":
        return _brain(batch, n_prefix)
    if kind == "planner":
        return _planner(batch)
    if kind == "policy":
        return _policy(batch)
    raise ValueError(f"unknown batch kind {kind!r}; expected one of {KINDS}")


def summary(kind: str, stats: dict[str, float]) -> str:
    """One console line, e.g. "brain masks ok: trained_share=0.41 enc_len=32.5 dec_len=61.0"."""
    return f"{kind} masks ok: " + " ".join(f"{k}={v:.3g}" for k, v in stats.items())
