"""The decoder's byte-level BPE: the byte ids of `bytes.py` plus merges learned from the corpus.

Ids 0-255 are the byte values and 256-258 are PAD/BOS/EOS, exactly as in `bytes.py`, so a
BPE decoder reads byte ids unchanged; learned tokens take 259 onwards in the order they were
learned. Saved as one `tokenizer.json` (the `tokenizers` library format) beside a checkpoint.
"""

import json
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from gestalt_jax.text import bytes as byte_tok
from gestalt_jax.text.bytes import BOS, EOS, PAD, VOCAB_SIZE

FILENAME = "tokenizer.json"
FIRST_MERGE = VOCAB_SIZE  # learned tokens follow the byte vocabulary
SPECIALS = {PAD: "<|pad|>", BOS: "<|bos|>", EOS: "<|eos|>"}
# A pair seen once only memorises one word; it buys no compression on new text.
MIN_PAIR_COUNT = 2


def _byte_chars() -> list[str]:
    """GPT-2's byte -> printable character table, the one the ByteLevel pre-tokenizer uses."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    chars = {b: chr(b) for b in printable}
    for n, b in enumerate(b for b in range(256) if b not in chars):
        chars[b] = chr(256 + n)
    return [chars[b] for b in range(256)]


BYTE_CHARS = _byte_chars()
CHAR_BYTES = {c: b for b, c in enumerate(BYTE_CHARS)}


def _pre_tokenizer() -> pre_tokenizers.ByteLevel:
    # No prefix space: encode must be the exact inverse of decode, leading space or not.
    return pre_tokenizers.ByteLevel(add_prefix_space=False)


class BpeTokenizer:
    """A `tokenizers.Tokenizer` with our id layout; build with `train` or `load`."""

    def __init__(self, tok: Tokenizer):
        self.tok = tok
        # Not saved in tokenizer.json: without it the text "<|eos|>" in user input
        # would encode to the EOS id.
        self.tok.encode_special_tokens = True
        # id -> the bytes it stands for; specials stand for none.
        self._bytes = [
            b"" if i in SPECIALS else bytes(CHAR_BYTES[c] for c in tok.id_to_token(i))
            for i in range(tok.get_vocab_size())
        ]

    @property
    def vocab_size(self) -> int:
        return len(self._bytes)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`: skips PAD/BOS, stops at EOS, replaces invalid UTF-8.

        Ids beyond the vocabulary are skipped: the decoder's head may be sized for more
        merges than a small corpus supported.
        """
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if 0 <= i < len(self._bytes):
                out += self._bytes[i]
        return out.decode("utf-8", errors="replace")

    def compression(self, texts: Iterable[str]) -> float:
        """UTF-8 bytes per BPE token over `texts` (1.0 means no gain over bytes)."""
        texts = list(texts)
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        n_tokens = sum(len(ids) for ids in self.encode_batch(texts))
        if n_tokens == 0:
            raise ValueError("compression of texts that encode to no tokens")
        return n_bytes / n_tokens

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes `directory/tokenizer.json` and returns its path."""
        path = Path(directory) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(path), pretty=True)
        return path


def _build(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in SPECIALS.values()])
    return tok


def train(texts: Iterable[str], merges: int) -> BpeTokenizer:
    """Learns up to `merges` tokens from `texts`; vocab_size = 259 + learned merges.

    Deterministic: the same texts give the same tokenizer.json. A corpus that supports
    fewer merges (no pair left seen twice) gives fewer, with a warning; the decoder's
    head, sized from the config, then has unused rows, which is harmless.
    """
    if merges < 0:
        raise ValueError(f"merges must be >= 0, got {merges}")
    learner = Tokenizer(models.BPE())
    learner.pre_tokenizer = _pre_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=256 + merges,
        min_frequency=MIN_PAIR_COUNT,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    learner.train_from_iterator(texts, trainer)
    learned = json.loads(learner.to_str())["model"]
    # The learner numbers its 256 byte characters in character order and new tokens
    # after them in the order learned; keep the learned order, move bytes to their values.
    new_tokens = sorted((i, t) for t, i in learned["vocab"].items() if i >= 256)
    vocab = {c: b for b, c in enumerate(BYTE_CHARS)}
    vocab.update({name: i for i, name in SPECIALS.items()})
    vocab.update({t: FIRST_MERGE + n for n, (_, t) in enumerate(new_tokens)})
    if len(new_tokens) < merges:
        warnings.warn(
            f"BPE learned {len(new_tokens)} of {merges} merges: no pair occurs {MIN_PAIR_COUNT}+ times "
            f"in the remaining corpus; vocab_size is {len(vocab)}, not {FIRST_MERGE + merges}",
            stacklevel=2,
        )
    return BpeTokenizer(_build(vocab, [tuple(m) for m in learned["merges"]]))


def load(directory: str | os.PathLike) -> BpeTokenizer:
    """Reads `directory/tokenizer.json` written by `BpeTokenizer.save`, checking its id layout."""
    path = Path(directory) / FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"no BPE tokenizer at {path}")
    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text)
        tok = Tokenizer.from_str(text)
    except Exception as e:  # json and tokenizers raise unrelated types for a corrupt file
        raise ValueError(f"{path} is not a tokenizers tokenizer.json: {e}") from e

    def expect(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"{path} is not a gestalt BPE tokenizer: {what}")

    expect((spec.get("model") or {}).get("type") == "BPE", "model is not BPE")
    pre = spec.get("pre_tokenizer") or {}
    expect(
        pre.get("type") == "ByteLevel" and not pre.get("add_prefix_space"),
        "pre_tokenizer is not ByteLevel(add_prefix_space=False)",
    )
    expect(spec.get("normalizer") is None, "it has a normalizer, so decode would not invert encode")
    added = {t["id"]: (t["content"], t["special"]) for t in spec.get("added_tokens") or []}
    expect(
        added == {i: (name, True) for i, name in SPECIALS.items()},
        f"added tokens are {sorted(added.values())}, not the specials {list(SPECIALS.values())}",
    )
    for b, c in enumerate(BYTE_CHARS):
        expect(tok.id_to_token(b) == c, f"id {b} is {tok.id_to_token(b)!r}, not byte {b}")
    for i in range(FIRST_MERGE, tok.get_vocab_size()):
        token = tok.id_to_token(i)
        expect(
            token is not None and all(ch in CHAR_BYTES for ch in token),
            f"id {i} is {token!r}, not a run of byte characters",
        )
    return BpeTokenizer(tok)


def decoder_pair(
    tok: BpeTokenizer, texts: Sequence[str], length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BPE `bytes.teacher_forcing` of texts: (inputs, targets, weights), all [B, length]."""
    return byte_tok.teacher_forcing(tok.encode_batch(texts), length)
