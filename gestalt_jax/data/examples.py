"""Records (talk pairs, labelled goals) → numpy examples and batches for each component.

Per-example encoders (`talk_example`, `planner_example`, `policy_example`) return dicts of
arrays of the example's own length, no padding; `layout` says how a component's examples
pack into rows (data/packing.py), and the grain pipelines pack them. The `*_batch` functions
give the padded one-example-per-row batches of the unpacked forward (inference, tests).
Every record read from a file carries `_where` = "file:line", so an error or a truncation
warning raised long after loading still names its source.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from absl import logging

from gestalt_jax.model.policy import ARG_CHANNELS, ARG_KINDS, ARGS_PER_SLOT
from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text import labels, plan_vocab

WHERE = "_where"  # record key holding "file:line"


class DataError(ValueError):
    """A record that cannot be used; the message names the file and line."""


def where(record: dict) -> str:
    """The "file:line" of a record read from a file, or "<record>" for one built in code."""
    return record.get(WHERE, "<record>")


def read_jsonl(path: str | Path, fields: Sequence[str]) -> list[dict]:
    """Every record of a JSONL file, each checked to hold `fields` and tagged with `_where`."""
    records = []
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    with f:
        for line_no, raw in enumerate(f, 1):
            at = f"{path}:{line_no}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{at}: not UTF-8 ({e.reason} at byte {e.start})") from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{at}: malformed JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{at}: expected a JSON object, got {type(record).__name__}")
            for field in fields:
                if field not in record:
                    raise DataError(f"{at}: missing field {field!r}")
            record[WHERE] = at
            records.append(record)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def stack(examples: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per-example dicts → one dict of arrays with a leading batch axis."""
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


# ---------------------------------------------------------------- brain (talk pairs)

def talk_example(pair: dict, enc_len: int, dec_len: int, n_prefix: int,
                 dec_encode: Callable[[str], list[int]] = byte_tok.encode) -> dict[str, np.ndarray]:
    """enc: the prompt's bytes (the end of an over-long prompt kept, at most enc_len); dec_in,
    dec_tgt, dec_w: n_prefix slots for the concept prefix (PAD, untrained), then BOS + response
    tokens / tokens + EOS / 1, cut at dec_len text positions. `dec_encode` is the decoder
    tokenizer (bytes or BPE; PAD/BOS/EOS shared)."""
    seq = [byte_tok.BOS, *dec_encode(pair["response"]), byte_tok.EOS][: dec_len + 1]
    slots = [byte_tok.PAD] * n_prefix
    return dict(enc=np.array(byte_tok.encode(pair["prompt"])[-enc_len:], np.int32),
                dec_in=np.array(slots + seq[:-1], np.int32), dec_tgt=np.array(slots + seq[1:], np.int32),
                dec_w=np.array([0.0] * n_prefix + [1.0] * (len(seq) - 1), np.float32))


def talk_truncated(pair: dict, enc_len: int, dec_len: int,
                   dec_encode: Callable[[str], list[int]] = byte_tok.encode) -> list[str]:
    """Which limits `talk_example` cuts this pair at (empty when it fits)."""
    out = []
    if len(pair["prompt"].encode("utf-8")) > enc_len:
        out.append(f"prompt > enc_len={enc_len} bytes")
    if len(dec_encode(pair["response"])) > dec_len - 1:  # BOS and EOS take the other two
        out.append(f"response > dec_len-1={dec_len - 1} tokens")
    return out


def talk_batch(pairs: Sequence[dict], enc_len: int, dec_len: int,
               dec_encode: Callable[[str], list[int]] = byte_tok.encode) -> dict[str, np.ndarray]:
    """Unpacked brain batch: enc [B, Le] left-padded; dec_in/dec_tgt/dec_w [B, Ld] right-padded."""
    dec_in, dec_tgt, dec_w = byte_tok.teacher_forcing([dec_encode(p["response"]) for p in pairs], dec_len)
    return dict(enc=byte_tok.encode_left([p["prompt"] for p in pairs], enc_len), dec_in=dec_in,
                dec_tgt=dec_tgt, dec_w=dec_w)


# ---------------------------------------------------------------- planner and policy (goals)

def load_goals(path: str | Path) -> list[dict]:
    """Labelled goals (datasets/goals/README.md), each checked against the label space."""
    records = read_jsonl(path, ("goal", "intent", "actions"))
    for r in records:
        problem = goal_problem(r)
        if problem:
            raise DataError(f"{where(r)}: {problem}")
    return records


def goal_problem(r: dict) -> str | None:
    """What is wrong with a labelled goal, or None."""
    goal, intent, actions, args = r["goal"], r["intent"], r["actions"], r.get("args")
    if not isinstance(goal, str) or not goal.strip():
        return f"goal must be a non-empty string, got {goal!r}"
    if intent not in labels.INTENTS:
        return f"unknown intent {intent!r}; valid: {', '.join(labels.INTENTS)}"
    if not isinstance(actions, list) or not actions:
        return f"actions must be a non-empty list of tools, got {actions!r}"
    if len(actions) > labels.NUM_SLOTS:
        return f"{len(actions)} actions; the policy has {labels.NUM_SLOTS} slots"
    for tool in actions:
        if tool not in labels.TOOLS:
            return f"unknown tool {tool!r} in actions; valid: {', '.join(labels.TOOLS)}"
    if args is None:
        return None
    if not isinstance(args, list) or len(args) != len(actions):
        got = f"{len(args)} entries" if isinstance(args, list) else repr(args)
        return f"args must be a list of one object per action ({len(actions)}), got {got}"
    for s, (tool, step_args) in enumerate(zip(actions, args), 1):
        at = f"step {s} ({tool})"
        if not isinstance(step_args, dict):
            return f"{at}: args must be an object, got {step_args!r}"
        for name, value in step_args.items():
            allowed = labels.TOOL_ARGS[tool]
            if name not in allowed:
                return f"{at}: unknown argument {name!r}; {tool} takes {list(allowed) or 'no arguments'}"
            if isinstance(value, str):
                if not value or value not in goal:
                    return f"{at} {name}: span {value!r} is not in the goal {goal!r}"
            elif isinstance(value, dict) and set(value) == {"from", "pick"}:
                k, n = value["from"], value["pick"]
                if type(k) is not int or not 1 <= k < s:
                    return f"{at} {name}: from={k!r} is not an earlier step (1..{s - 1})"
                if type(n) is not int or not 1 <= n <= plan_vocab.NUM_PICKS:
                    return f"{at} {name}: pick={n!r} outside 1..{plan_vocab.NUM_PICKS}"
            else:
                return f"{at} {name}: value must be a span of the goal or {{\"from\": k, \"pick\": n}}, " \
                       f"got {value!r}"
    return None


def chat_goal(pair: dict) -> dict:
    """A talk pair's prompt as a labelled goal: conversation, one TALK step."""
    return {"goal": pair["prompt"], "intent": "CONVERSATION", "actions": ["TALK"], "args": [{}],
            WHERE: pair[WHERE]}


def goal_steps(record: dict) -> list[dict]:
    """A labelled goal's actions and args as plan steps `{"tool", "args"}`."""
    args = record.get("args") or [{} for _ in record["actions"]]
    return [dict(tool=tool, args=a) for tool, a in zip(record["actions"], args)]


def _plan_ids(record: dict) -> list[int]:
    try:
        return plan_vocab.encode_plan(goal_steps(record))
    except ValueError as e:
        raise DataError(f"{where(record)}: {e}") from None


def _planner_ids(record: dict, max_len: int) -> tuple[list[int], int]:
    """prompt + plan ids (at most max_len + 1) and the prompt's length. A goal too long for its
    plan keeps its end, as decoding does (plan_vocab.visible_goal); a plan too long even for an
    empty goal is cut at its end."""
    plan = _plan_ids(record)
    prompt = plan_vocab.encode_prompt(plan_vocab.visible_goal(record["goal"], max_len + 1 - len(plan)))
    return (prompt + plan)[: max_len + 1], len(prompt)


def planner_example(record: dict, max_len: int) -> dict[str, np.ndarray]:
    """inputs/targets/weights [T <= max_len]: prompt + plan shifted by one, weights from
    plan_vocab (0 on the prompt, 0.1 on the first STEP); trained_at/trained_targets/trained_weights
    [P]: the positions whose weight is not 0, their targets and weights (what the loss reads)."""
    ids, prompt_len = _planner_ids(record, max_len)
    ids_T1 = np.array(ids, np.int32)
    weights_T1 = plan_vocab.loss_weights(ids_T1, prompt_len)
    targets_T, weights_T = ids_T1[1:], weights_T1[1:]
    at_P = np.flatnonzero(weights_T).astype(np.int32)
    return dict(inputs=ids_T1[:-1], targets=targets_T, weights=weights_T,
                trained_at=at_P, trained_targets=targets_T[at_P], trained_weights=weights_T[at_P])


def planner_truncated(record: dict, max_len: int) -> list[str]:
    plan = _plan_ids(record)
    room = max_len + 1 - len(plan)  # ids left for the prompt
    if plan_vocab.frame_len() > room:
        return [f"plan > max_len+1={max_len + 1} tokens with the prompt's frame"]
    too_long = not plan_vocab.prompt_fits(record["goal"], room)
    return [f"prompt+plan > max_len+1={max_len + 1} tokens (the goal's end kept)"] if too_long else []


def plan_trains(record: dict, max_len: int) -> int:
    """How many positions of a planner example the loss reads (at most): its plan's tokens."""
    return min(len(_plan_ids(record)), max_len)


def plan_fits(record: dict, max_len: int, trained_len: int) -> bool:
    return plan_trains(record, max_len) <= trained_len


def check_trained_len(records: Sequence[dict], max_len: int, trained_len: int) -> None:
    """Every plan's trained positions fit a packed row's `trained_len` (planner_sft.trained_len);
    else a DataError naming the first record whose plan does not and the setting that would do."""
    for r in records:
        if not plan_fits(r, max_len, trained_len):
            n = plan_trains(r, max_len)
            longest = max(plan_trains(x, max_len) for x in records)
            raise DataError(f"{where(r)}: its plan trains {n} positions, more than planner_sft.trained_len="
                            f"{trained_len} (the positions of a packed row the planner's loss reads); set "
                            f"--config.planner_sft.trained_len={longest} (the longest here) or 0 (planner.max_len)")


def planner_batch(records: Sequence[dict], max_len: int) -> dict[str, np.ndarray]:
    """Unpacked: inputs/targets/weights [B, max_len], right-padded."""
    return stack([_padded(planner_example(r, max_len), max_len,
                          dict(inputs=plan_vocab.PAD, targets=plan_vocab.PAD, trained_targets=plan_vocab.PAD))
                  for r in records])


def _padded(example: dict, length: int, fill: dict) -> dict:
    """An example's sequences right-padded to `length` (fill values by key, else 0)."""
    return {k: np.concatenate([v, np.full(length - len(v), fill.get(k, 0), v.dtype)]) for k, v in example.items()}


def _span(record: dict, value: str, kept: int) -> tuple[int, int] | None:
    """Inclusive byte positions of `value` within the goal's last `kept` bytes, or None if cut off."""
    goal = record["goal"]
    i = goal.find(value)
    if i < 0:
        raise DataError(f"{where(record)}: argument {value!r} is not a span of the goal {goal!r}")
    start = len(goal[:i].encode()) + kept - len(goal.encode())
    end = start + len(value.encode()) - 1
    return (start, end) if start >= 0 else None


# One value per example: the policy's labels (and the weight that marks a padding slot 0).
POLICY_LABELS = ("intent", "actions", "arg_kind", "span_start", "span_end", "from_step", "pick", "example_w")


def policy_example(record: dict, max_len: int) -> dict[str, np.ndarray]:
    """ids [<= max_len]: the goal's bytes (the end of an over-long goal kept); intent []; actions
    [S]; per arg channel [C]: arg_kind, span_start/end (positions in ids), from_step, pick (0
    where the kind does not use them); example_w [] = 1 (padding sets it to 0). A span cut off
    by truncation becomes kind "none"."""
    S, C = labels.NUM_SLOTS, ARG_CHANNELS
    ids = np.array(byte_tok.encode(record["goal"])[-max_len:], np.int32)
    out = dict(ids=ids, example_w=np.float32(1.0), intent=np.int32(0), actions=np.zeros(S, np.int32))
    for k in ("arg_kind", "span_start", "span_end", "from_step", "pick"):
        out[k] = np.zeros(C, np.int32)
    kind = {k: i for i, k in enumerate(ARG_KINDS)}
    steps = goal_steps(record)
    if len(steps) > S:
        raise DataError(f"{where(record)}: {len(steps)} actions, the policy has {S} slots")
    try:
        out["intent"] = np.int32(labels.index(labels.INTENTS, record["intent"]))
        for s, step in enumerate(steps):
            out["actions"][s] = labels.index(labels.ACTIONS, step["tool"])
            for j, name in enumerate(labels.TOOL_ARGS[step["tool"]]):
                value, ch = step["args"].get(name), s * ARGS_PER_SLOT + j
                if isinstance(value, str):
                    span = _span(record, value, len(ids))
                    if span is not None:
                        out["arg_kind"][ch] = kind["span"]
                        out["span_start"][ch], out["span_end"][ch] = span
                elif isinstance(value, dict):
                    out["arg_kind"][ch] = kind["from"]
                    out["from_step"][ch] = value["from"] - 1
                    out["pick"][ch] = value["pick"] - 1
    except DataError:
        raise
    except (ValueError, KeyError) as e:  # labels.index names the label and the valid ones
        raise DataError(f"{where(record)}: {e}") from None
    return out


def policy_truncated(record: dict, max_len: int) -> list[str]:
    return [f"goal > max_len={max_len} bytes"] if len(record["goal"].encode("utf-8")) > max_len else []


def policy_batch(records: Sequence[dict], max_len: int) -> dict[str, np.ndarray]:
    """Unpacked: ids [B, max_len] left-padded, span positions moved with them; intent [B];
    actions [B, S]; arg channels [B, C]; example_w [B]."""
    out = []
    for r in records:
        e = policy_example(r, max_len)
        shift = max_len - len(e["ids"])
        span = e["arg_kind"] == ARG_KINDS.index("span")
        out.append(dict(e, ids=np.concatenate([np.full(shift, byte_tok.PAD, np.int32), e["ids"]]),
                        span_start=np.where(span, e["span_start"] + shift, 0).astype(np.int32),
                        span_end=np.where(span, e["span_end"] + shift, 0).astype(np.int32)))
    return stack(out)


def warn_truncated(records: Sequence[dict], truncated: Callable[[dict], list[str]]) -> dict[str, int]:
    """One absl warning per file with truncated examples (count and limits); {file: count}.

    `truncated` is e.g. `functools.partial(talk_truncated, enc_len=64, dec_len=128)`.
    """
    totals, counts = collections.Counter(), collections.Counter()
    limits = collections.defaultdict(collections.Counter)
    for r in records:
        file = where(r).rpartition(":")[0] or where(r)
        totals[file] += 1
        cut = truncated(r)
        if cut:
            counts[file] += 1
            limits[file].update(cut)
    for file, n in counts.items():
        detail = "; ".join(f"{limit}: {k}" for limit, k in sorted(limits[file].items()))
        logging.warning("%s: %d of %d examples truncated (%s)", file, n, totals[file], detail)
    return dict(counts)
