"""Records (talk pairs, labelled goals) → numpy batches for each component.

Pure functions of their inputs; the grain pipelines call them per batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from gestalt_jax.model.policy import ARG_CHANNELS, ARG_KINDS, ARGS_PER_SLOT
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels, plan_vocab


class DataError(ValueError):
    """A record that cannot be used; the message names the file and line."""


def read_jsonl(path: str | Path, fields: Sequence[str]) -> list[dict]:
    """Every record of a JSONL file, each checked to hold `fields`; errors name file:line."""
    records = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            where = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: malformed JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            for field in fields:
                if field not in record:
                    raise DataError(f"{where}: missing field {field!r}")
            records.append(record)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def talk_batch(pairs: Sequence[dict], enc_len: int, dec_len: int) -> dict[str, np.ndarray]:
    """Byte-level brain batch: enc [B, Le] left-padded; dec_in/dec_tgt/dec_w [B, Ld]."""
    dec_in, dec_tgt, dec_w = byte_tok.decoder_pair([p["response"] for p in pairs], dec_len)
    return dict(enc=byte_tok.encode_left([p["prompt"] for p in pairs], enc_len),
                dec_in=dec_in, dec_tgt=dec_tgt, dec_w=dec_w)


def goal_steps(record: dict) -> list[dict]:
    """A labelled goal's actions and args as plan steps `{"tool", "args"}`."""
    args = record.get("args") or [{} for _ in record["actions"]]
    return [dict(tool=tool, args=a) for tool, a in zip(record["actions"], args)]


def planner_batch(records: Sequence[dict], max_len: int) -> dict[str, np.ndarray]:
    """ids [B, T] = prompt + plan; inputs/targets shifted by one; weights from plan_vocab."""
    B = len(records)
    ids_BxT1 = np.full((B, max_len + 1), plan_vocab.PAD, np.int32)
    prompt_lens = np.zeros(B, np.int32)
    for b, r in enumerate(records):
        prompt = plan_vocab.encode_prompt(r["goal"])
        ids = (prompt + plan_vocab.encode_plan(goal_steps(r)))[: max_len + 1]
        ids_BxT1[b, : len(ids)] = ids
        prompt_lens[b] = len(prompt)
    weights = plan_vocab.loss_weights(ids_BxT1, prompt_lens)
    return dict(inputs=ids_BxT1[:, :-1], targets=ids_BxT1[:, 1:], weights=weights[:, 1:])


def _span(goal: str, value: str, length: int) -> tuple[int, int] | None:
    """Inclusive byte positions of `value` inside the left-padded goal, or None if cut off."""
    i = goal.find(value)
    if i < 0:
        raise DataError(f"argument {value!r} is not a span of the goal {goal!r}")
    n = len(goal.encode())
    start = len(goal[:i].encode()) + length - n
    end = start + len(value.encode()) - 1
    return (start, end) if start >= 0 else None


def policy_batch(records: Sequence[dict], max_len: int) -> dict[str, np.ndarray]:
    """ids [B, L] and labels: intent [B]; actions [B, S]; per arg channel [B, C]: kind,
    span start/end, from_step, pick (0 where the kind does not use them)."""
    B, S, C = len(records), labels.NUM_SLOTS, ARG_CHANNELS
    out = dict(ids=byte_tok.encode_left([r["goal"] for r in records], max_len),
               intent=np.zeros(B, np.int32), actions=np.zeros((B, S), np.int32))
    for k in ("arg_kind", "span_start", "span_end", "from_step", "pick"):
        out[k] = np.zeros((B, C), np.int32)
    kind = {k: i for i, k in enumerate(ARG_KINDS)}
    for b, r in enumerate(records):
        out["intent"][b] = labels.index(labels.INTENTS, r["intent"])
        for s, step in enumerate(goal_steps(r)[:S]):
            out["actions"][b, s] = labels.index(labels.ACTIONS, step["tool"])
            for j, name in enumerate(labels.TOOL_ARGS[step["tool"]]):
                value, ch = step["args"].get(name), s * ARGS_PER_SLOT + j
                if isinstance(value, str):
                    span = _span(r["goal"], value, max_len)
                    if span is not None:
                        out["arg_kind"][b, ch] = kind["span"]
                        out["span_start"][b, ch], out["span_end"][b, ch] = span
                elif isinstance(value, dict):
                    out["arg_kind"][b, ch] = kind["from"]
                    out["from_step"][b, ch] = value["from"] - 1
                    out["pick"][b, ch] = value["pick"] - 1
    return out
