"""The byte tokenizer shared by encoder, policy and decoder fallback.

Ids 0-255 are the bytes of the UTF-8 encoding; three specials follow. One tokenizer
for every byte-level component: two vocabularies for one model was a bug in the original.
"""

from typing import Iterable, Sequence

import numpy as np

PAD = 256
BOS = 257
EOS = 258
VOCAB_SIZE = 259


def encode(text: str) -> list[int]:
    """UTF-8 bytes of `text` as ids."""
    return list(text.encode("utf-8"))


def decode(ids: Iterable[int]) -> str:
    """Text of `ids`: skips PAD/BOS, stops at EOS, replaces invalid UTF-8."""
    out = bytearray()
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i < 256:
            out.append(i)
    return out.decode("utf-8", errors="replace")


def _byte_rows(texts: Sequence[str]) -> list[np.ndarray]:
    return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]


def encode_left(texts: Sequence[str], length: int) -> np.ndarray:
    """int32 [B, length], left-padded with PAD.

    Over-long texts keep their last `length` bytes: a goal's end usually carries the
    object of the request ("... in src/main.py").
    """
    out_BxL = np.full((len(texts), length), PAD, dtype=np.int32)
    for b, row in enumerate(_byte_rows(texts)):
        row = row[len(row) - length :] if len(row) > length else row
        if len(row):
            out_BxL[b, length - len(row) :] = row
    return out_BxL


def encode_right(texts: Sequence[str], length: int, bos: bool = True, eos: bool = False) -> np.ndarray:
    """int32 [B, length], right-padded with PAD; BOS/EOS optional; truncated at the end."""
    out_BxL = np.full((len(texts), length), PAD, dtype=np.int32)
    for b, row in enumerate(_byte_rows(texts)):
        ids = np.concatenate([[BOS] if bos else [], row, [EOS] if eos else []])
        ids = ids[:length]
        out_BxL[b, : len(ids)] = ids
    return out_BxL


def teacher_forcing(rows: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs, targets, weights), all [B, length], from token-id rows of any decoder tokenizer
    sharing PAD/BOS/EOS (bytes or BPE).

    inputs = BOS + ids, targets = ids + EOS (inputs shifted left by one), right-padded and
    cut at the end; weights are 1.0 on real target positions, EOS included, 0.0 on PAD.
    """
    seq_BxL1 = np.full((len(rows), length + 1), PAD, dtype=np.int32)
    for b, ids in enumerate(rows):
        row = [BOS, *ids, EOS][: length + 1]
        seq_BxL1[b, : len(row)] = row
    inputs_BxL = seq_BxL1[:, :-1].copy()
    targets_BxL = seq_BxL1[:, 1:].copy()
    # The EOS lives only in the targets; an input EOS would teach nothing.
    inputs_BxL[inputs_BxL == EOS] = PAD
    weights_BxL = (targets_BxL != PAD).astype(np.float32)
    return inputs_BxL, targets_BxL, weights_BxL


def decoder_pair(texts: Sequence[str], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte-level `teacher_forcing` of texts."""
    return teacher_forcing([encode(t) for t in texts], length)
