"""Talk corpus import: prompt/response JSONL, chat messages and Alpaca, recognised per file.

Every format becomes `{"prompt", "response", "_where"}` pairs; errors name file:line.
"""

from __future__ import annotations

from pathlib import Path

from gestalt_jax import config as config_lib
from gestalt_jax.data.examples import WHERE, DataError, read_jsonl, where

# Format name → the fields that identify it (any one of them) and the full field set shown in errors.
FORMATS = {
    "pairs": (("prompt", "response"), '{"prompt", "response"}'),
    "chat": (("messages",), '{"messages": [{"role", "content"}, ...]}'),
    "alpaca": (("instruction", "output"), '{"instruction", "input", "output"}'),
}


def _format_of(record: dict) -> str:
    for name, (keys, _) in FORMATS.items():
        if any(k in record for k in keys):
            return name
    fields = sorted(k for k in record if k != WHERE)
    known = " | ".join(shape for _, shape in FORMATS.values())
    raise DataError(f"{where(record)}: unknown talk format with fields {fields}; recognised: {known}")


def _text(obj: dict, field: str, what: str, at: str, allow_empty: bool = False) -> str:
    """obj[field] as a string, or a DataError at `at` naming what is missing, empty or not text."""
    if field not in obj:
        raise DataError(f"{at}: missing {what} ({field!r})")
    value = obj[field]
    if not isinstance(value, str):
        raise DataError(f"{at}: {what} ({field!r}) must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{at}: empty {what} ({field!r})")
    return value


def _pair(record: dict, prompt: str, response: str) -> dict:
    return {"prompt": prompt, "response": response, WHERE: where(record)}


def _chat_pairs(record: dict) -> list[dict]:
    """Each assistant turn right after a user turn, paired with that user turn."""
    at, messages = where(record), record["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{at}: 'messages' must be a non-empty list of {{\"role\", \"content\"}}")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"{at}: messages[{i}] must be an object, got {type(m).__name__}")
    roles = [_text(m, "role", f"messages[{i}] role", at) for i, m in enumerate(messages)]
    pairs = [_pair(record, _text(messages[i - 1], "content", f"messages[{i - 1}] user content (prompt)", at),
                   _text(messages[i], "content", f"messages[{i}] assistant content (response)", at))
             for i in range(1, len(messages)) if roles[i - 1] == "user" and roles[i] == "assistant"]
    if not pairs:
        raise DataError(f"{at}: no assistant turn follows a user turn (roles {roles})")
    return pairs


def _record_pairs(fmt: str, record: dict) -> list[dict]:
    at = where(record)
    if fmt == "pairs":
        prompt, response = _text(record, "prompt", "prompt", at), _text(record, "response", "response", at)
        return [_pair(record, prompt, response)]
    if fmt == "chat":
        return _chat_pairs(record)
    prompt = _text(record, "instruction", "instruction (prompt)", at)
    extra = _text(record, "input", "input", at, allow_empty=True) if "input" in record else ""
    response = _text(record, "output", "output (response)", at)
    return [_pair(record, prompt + ("\n" + extra if extra else ""), response)]


def load_talk_file(path: str | Path) -> list[dict]:
    """Prompt/response pairs of one file; its format is recognised from its first record's fields."""
    records = read_jsonl(path, ())
    fmt = _format_of(records[0])
    pairs = []
    for r in records:
        this = _format_of(r)
        if this != fmt:
            fields = sorted(k for k in r if k != WHERE)
            raise DataError(f"{where(r)}: fields {fields} are the {this} format, but {where(records[0])} "
                            f"made this a {fmt} file ({FORMATS[fmt][1]})")
        pairs += _record_pairs(fmt, r)
    return pairs


def load_talk(spec: str, key: str = "data.talk_files") -> list[tuple[list[dict], float]]:
    """(pairs, weight) per file of a comma-separated `path[:weight]` list (config.<key>)."""
    return [(load_talk_file(path), weight) for path, weight in config_lib.weighted_files(spec, key)]
